package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

// anyNode serves one snapshot to every node, whatever its id or cluster.
type anyNode struct{}

func (anyNode) ID(*core.Node) string { return "any" }

// stdoutLines writes one JSON object per line; the gRPC server calls back from many goroutines.
type stdoutLines struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *stdoutLines) print(v any) {
	line, _ := json.Marshal(v)
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintln(s.w, string(line))
}

// requestLine is what the server prints for every DiscoveryRequest it receives.
type requestLine struct {
	Type        string   `json:"type"`
	Version     string   `json:"version"`
	Nonce       string   `json:"nonce"`
	Ack         bool     `json:"ack"`
	Error       string   `json:"error,omitempty"`
	Names       []string `json:"names"`
	NodeID      string   `json:"node_id"`
	NodeCluster string   `json:"node_cluster"`
}

func runServer(args []string) int {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:18000", "HOST:PORT to listen on (port 0: a free one)")
	file := fs.String("snapshot", "", "snapshot file (JSON)")
	_ = fs.Parse(args)
	if *file == "" {
		usage()
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	if err := serve(lis, *file, signals, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// serve runs the ADS server on lis until a signal other than SIGHUP arrives (SIGHUP re-reads file).
func serve(lis net.Listener, file string, signals <-chan os.Signal, w io.Writer) error {
	snap, err := loadSnapshot(file)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cache := cachev3.NewSnapshotCache(true, anyNode{}, nil)
	set := func(s *cachev3.Snapshot) error {
		if err := s.Consistent(); err != nil {
			// Served anyway: an inconsistent snapshot is a test case too.
			fmt.Fprintf(os.Stderr, "snapshot %s is not consistent: %v\n", s.GetVersion(resource.ClusterType), err)
		}
		return cache.SetSnapshot(ctx, "any", s)
	}
	if err := set(snap); err != nil {
		return err
	}

	out := &stdoutLines{w: w}
	nodes := map[int64]*core.Node{}
	var nodesMu sync.Mutex
	callbacks := serverv3.CallbackFuncs{
		StreamRequestFunc: func(id int64, req *discovery.DiscoveryRequest) error {
			nodesMu.Lock()
			if req.GetNode() != nil {
				nodes[id] = req.GetNode()
			}
			node := nodes[id]
			nodesMu.Unlock()
			line := requestLine{
				Type:        shortType(req.GetTypeUrl()),
				Version:     req.GetVersionInfo(),
				Nonce:       req.GetResponseNonce(),
				Ack:         req.GetResponseNonce() != "" && req.GetErrorDetail() == nil,
				Names:       append([]string{}, req.GetResourceNames()...),
				NodeID:      node.GetId(),
				NodeCluster: node.GetCluster(),
			}
			if d := req.GetErrorDetail(); d != nil {
				line.Error = d.GetMessage()
			}
			out.print(line)
			return nil
		},
		StreamClosedFunc: func(id int64, _ *core.Node) {
			nodesMu.Lock()
			delete(nodes, id)
			nodesMu.Unlock()
		},
		StreamResponseFunc: func(_ context.Context, _ int64, _ *discovery.DiscoveryRequest, res *discovery.DiscoveryResponse) {
			fmt.Fprintf(os.Stderr, "sent %s version %s nonce %s (%d resources)\n", shortType(res.GetTypeUrl()), res.GetVersionInfo(), res.GetNonce(), len(res.GetResources()))
		},
	}
	srv := serverv3.NewServer(ctx, cache, callbacks)
	g := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(g, srv)

	go func() {
		for sig := range signals {
			if sig != syscall.SIGHUP {
				g.Stop()
				return
			}
			s, err := loadSnapshot(file)
			if err == nil {
				err = set(s)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "SIGHUP: keeping the previous snapshot: %v\n", err)
				continue
			}
			fmt.Fprintf(os.Stderr, "SIGHUP: snapshot %s set\n", s.GetVersion(resource.ClusterType))
		}
	}()
	out.print(map[string]string{"listening": lis.Addr().String()})
	return g.Serve(lis)
}
