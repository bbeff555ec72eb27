package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// The four types of the contract, by their short names.
var typeURLs = map[string]string{
	"cluster":  resource.ClusterType,
	"endpoint": resource.EndpointType,
	"listener": resource.ListenerType,
	"route":    resource.RouteType,
}

func shortType(url string) string {
	for k, v := range typeURLs {
		if v == url {
			return k
		}
	}
	return url
}

// responseLine is what the client prints for every DiscoveryResponse.
type responseLine struct {
	Type    string   `json:"type"`
	Version string   `json:"version"`
	Nonce   string   `json:"nonce"`
	Names   []string `json:"names"`
	Valid   bool     `json:"valid"`
	Error   string   `json:"error,omitempty"`
	// Nacked: this response was NACKed (invalid, or --nack-first).
	Nacked bool `json:"nacked"`
}

// adsClient keeps, per type, what Envoy's ADS mux keeps: the names subscribed, the last version
// accepted, the last nonce seen.
type adsClient struct {
	stream    discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node      *core.Node
	names     map[string][]string
	accepted  map[string]string
	nonces    map[string]string
	got       map[string]bool // a valid response arrived
	pending   map[string]bool // names changed, no valid response since
	clusters  map[string]*clusterv3.Cluster
	nackFirst string
	nacked    bool
	out       *stdoutLines
}

func runClient(args []string) int {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	server := fs.String("server", "", "HOST:PORT of the ADS server")
	nodeID := fs.String("node-id", "", "node.id")
	nodeCluster := fs.String("node-cluster", "", "node.cluster")
	timeout := fs.Duration("timeout", 10*time.Second, "give up (exit 1) after this long")
	expect := fs.String("expect", "", "types that must arrive valid (default: cluster,listener and the endpoint/route types subscribed to)")
	nackFirst := fs.String("nack-first", "", "NACK the first response of this type on purpose, then ACK")
	caFile := fs.String("ca", "", "TLS: verify the server's certificate with these CAs (PEM file); plaintext when empty")
	serverName := fs.String("server-name", "", "TLS: the name sent as SNI and checked against the certificate (default: the --server host)")
	_ = fs.Parse(args)
	if *server == "" || *nodeID == "" || *nodeCluster == "" {
		usage()
	}
	var expected []string
	if *expect != "" {
		for _, t := range strings.Split(*expect, ",") {
			if _, ok := typeURLs[t]; !ok {
				fmt.Fprintf(os.Stderr, "--expect: unknown type %q (cluster, endpoint, listener, route)\n", t)
				return 2
			}
			expected = append(expected, t)
		}
	}
	if _, ok := typeURLs[*nackFirst]; *nackFirst != "" && !ok {
		fmt.Fprintf(os.Stderr, "--nack-first: unknown type %q\n", *nackFirst)
		return 2
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	transport := insecure.NewCredentials()
	if *caFile != "" {
		tlsCreds, err := credentials.NewClientTLSFromFile(*caFile, *serverName)
		if err != nil {
			fmt.Fprintln(os.Stderr, "--ca:", err)
			return 2
		}
		transport = tlsCreds
	}
	conn, err := grpc.NewClient(*server, grpc.WithTransportCredentials(transport))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c := &adsClient{
		stream: stream, node: &core.Node{Id: *nodeID, Cluster: *nodeCluster},
		names: map[string][]string{}, accepted: map[string]string{}, nonces: map[string]string{},
		got: map[string]bool{}, pending: map[string]bool{}, nackFirst: *nackFirst, out: &stdoutLines{w: os.Stdout},
	}
	err = c.run(expected)
	// Half-close and let the server read what was sent last (an ACK or NACK) before the connection goes.
	_ = stream.CloseSend()
	drain := make(chan struct{})
	go func() {
		for {
			if _, e := stream.Recv(); e != nil {
				close(drain)
				return
			}
		}
	}()
	select {
	case <-drain:
	case <-time.After(2 * time.Second):
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "timeout after %s: %s\n", *timeout, c.missing(expected))
		} else {
			fmt.Fprintln(os.Stderr, err)
		}
		return 1
	}
	return 0
}

func (c *adsClient) run(expected []string) error {
	// Envoy's start-up order: CDS first; LDS once the clusters (and their EDS) are in.
	if err := c.send("cluster", nil); err != nil {
		return err
	}
	listening := false
	for !c.done(expected) {
		res, err := c.stream.Recv()
		if err != nil {
			return err
		}
		if err := c.handle(res); err != nil {
			return err
		}
		if !listening && c.got["cluster"] && !c.pending["endpoint"] {
			listening = true
			if err := c.send("listener", nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *adsClient) expectedTypes(expected []string) []string {
	if expected != nil {
		return expected
	}
	out := []string{"cluster", "listener"}
	for _, t := range []string{"endpoint", "route"} {
		if len(c.names[t]) > 0 {
			out = append(out, t)
		}
	}
	return out
}

func (c *adsClient) done(expected []string) bool {
	for _, t := range c.expectedTypes(expected) {
		if !c.got[t] || c.pending[t] {
			return false
		}
	}
	return true
}

func (c *adsClient) missing(expected []string) string {
	var m []string
	for _, t := range c.expectedTypes(expected) {
		if !c.got[t] || c.pending[t] {
			m = append(m, fmt.Sprintf("%s %v", t, c.names[t]))
		}
	}
	return "no valid response for " + strings.Join(m, ", ")
}

// send writes a request for type t: an ACK when nack is nil and a nonce was seen, a NACK otherwise.
func (c *adsClient) send(t string, nack error) error {
	req := &discovery.DiscoveryRequest{
		Node:          c.node,
		TypeUrl:       typeURLs[t],
		VersionInfo:   c.accepted[t],
		ResponseNonce: c.nonces[t],
		ResourceNames: c.names[t],
	}
	if nack != nil {
		req.ErrorDetail = &status.Status{Code: int32(codes.InvalidArgument), Message: nack.Error()}
	}
	return c.stream.Send(req)
}

func (c *adsClient) handle(res *discovery.DiscoveryResponse) error {
	t := shortType(res.GetTypeUrl())
	if _, ok := typeURLs[t]; !ok {
		return fmt.Errorf("response of a type never subscribed to: %s", res.GetTypeUrl())
	}
	c.nonces[t] = res.GetNonce()
	names, msgs, verr := decodeResources(res)
	if verr == nil {
		verr = c.checkSemantics(t, msgs)
	}
	line := responseLine{Type: t, Version: res.GetVersionInfo(), Nonce: res.GetNonce(), Names: names, Valid: verr == nil}
	if verr != nil {
		line.Error = verr.Error()
		line.Nacked = true
		c.out.print(line)
		if err := c.send(t, verr); err != nil {
			return err
		}
		return fmt.Errorf("invalid %s response version %q: %w", t, res.GetVersionInfo(), verr)
	}
	if t == c.nackFirst && !c.nacked {
		c.nacked = true
		line.Nacked = true
		line.Error = "deliberate NACK (--nack-first)"
		c.out.print(line)
		// Counts as arrived: a server need not resend a version it was NACKed for.
		c.got[t] = true
		c.pending[t] = false
		return c.send(t, errors.New(line.Error))
	}
	c.out.print(line)
	c.accepted[t] = res.GetVersionInfo()
	c.got[t] = true
	c.pending[t] = false
	// As Envoy does, subscribe to what the accepted resources reference before ACKing them.
	if dep, want := c.references(t, msgs); dep != "" && !slices.Equal(want, c.names[dep]) {
		c.names[dep] = want
		c.pending[dep] = len(want) > 0
		if err := c.send(dep, nil); err != nil {
			return err
		}
	}
	return c.send(t, nil)
}

// decodeResources unmarshals and validates every resource of a response, as Envoy would before
// accepting it: the right type, a name, no name twice, and every validation rule (Anys included).
func decodeResources(res *discovery.DiscoveryResponse) ([]string, []proto.Message, error) {
	names := []string{}
	var msgs []proto.Message
	var errs []string
	seen := map[string]bool{}
	for i, a := range res.GetResources() {
		if a.GetTypeUrl() != res.GetTypeUrl() {
			errs = append(errs, fmt.Sprintf("resources[%d]: type %s in a %s response", i, a.GetTypeUrl(), res.GetTypeUrl()))
			continue
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Sprintf("resources[%d]: %v", i, err))
			continue
		}
		name := cachev3.GetResourceName(m)
		names = append(names, name)
		msgs = append(msgs, m)
		if name == "" {
			errs = append(errs, fmt.Sprintf("resources[%d]: no name", i))
		} else if seen[name] {
			errs = append(errs, fmt.Sprintf("resources[%d]: duplicate name %q", i, name))
		}
		seen[name] = true
		if err := validateDeep(m, fmt.Sprintf("resources[%d] (%s)", i, name)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return names, msgs, errors.New(strings.Join(errs, "; "))
	}
	return names, msgs, nil
}

// checkSemantics runs the checks Envoy makes when it applies clusters and listeners.
func (c *adsClient) checkSemantics(t string, msgs []proto.Message) error {
	var errs []string
	switch t {
	case "cluster":
		for i, m := range msgs {
			errs = append(errs, checkCluster(fmt.Sprintf("resources[%d]", i), m.(*clusterv3.Cluster), true)...)
		}
	case "listener":
		// Inline route configs are checked against the clusters accepted so far (Envoy's CDS comes first).
		for i, m := range msgs {
			errs = append(errs, checkListener(fmt.Sprintf("resources[%d]", i), m.(*listenerv3.Listener), c.clusters)...)
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	if t == "cluster" {
		c.clusters = map[string]*clusterv3.Cluster{}
		for _, m := range msgs {
			cl := m.(*clusterv3.Cluster)
			c.clusters[cl.GetName()] = cl
		}
	}
	return nil
}

// references names the EDS or RDS resources that accepted clusters or listeners need.
func (c *adsClient) references(t string, msgs []proto.Message) (string, []string) {
	var out []string
	switch t {
	case "cluster":
		for _, m := range msgs {
			cl := m.(*clusterv3.Cluster)
			if cl.GetType() != clusterv3.Cluster_EDS {
				continue
			}
			name := cl.GetEdsClusterConfig().GetServiceName()
			if name == "" {
				name = cl.GetName()
			}
			out = append(out, name)
		}
		slices.Sort(out)
		return "endpoint", slices.Compact(out)
	case "listener":
		for _, m := range msgs {
			l := m.(*listenerv3.Listener)
			for _, fc := range append(l.GetFilterChains(), l.GetDefaultFilterChain()) {
				for _, f := range fc.GetFilters() {
					if f.GetTypedConfig().GetTypeUrl() != hcmType {
						continue
					}
					var hcm hcmv3.HttpConnectionManager
					if f.GetTypedConfig().UnmarshalTo(&hcm) == nil && hcm.GetRds() != nil {
						out = append(out, hcm.GetRds().GetRouteConfigName())
					}
				}
			}
		}
		slices.Sort(out)
		return "route", slices.Compact(out)
	}
	return "", nil
}
