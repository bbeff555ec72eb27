package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer collects the server's stdout lines while the test reads them.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []requestLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []requestLine
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"listening"`) {
			continue
		}
		var l requestLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("server line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// startServer runs the reference server on a free loopback port; the returned channel sends it signals.
func startServer(t *testing.T, snapshot string) (string, *syncBuffer, chan os.Signal) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	signals := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- serve(lis, snapshot, signals, out) }()
	t.Cleanup(func() {
		select {
		case signals <- syscall.SIGTERM:
		case <-done:
			return
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("server did not stop")
		}
	})
	// Ready once it printed its address: the snapshot file has been read by then.
	waitFor(t, "the server listening", func() bool {
		select {
		case err := <-done:
			t.Fatalf("server stopped: %v", err)
		default:
		}
		out.mu.Lock()
		defer out.mu.Unlock()
		return strings.Contains(out.b.String(), `"listening"`)
	})
	return lis.Addr().String(), out, signals
}

// captureStdout runs f with os.Stdout redirected and returns what it printed.
func captureStdout(t *testing.T, f func() int) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	got := make(chan string)
	go func() { b, _ := io.ReadAll(r); got <- string(b) }()
	code := f()
	os.Stdout = saved
	_ = w.Close()
	return code, <-got
}

func clientLines(t *testing.T, out string) []responseLine {
	t.Helper()
	var lines []responseLine
	for _, s := range strings.Split(strings.TrimSpace(out), "\n") {
		var l responseLine
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("client line %q: %v", s, err)
		}
		lines = append(lines, l)
	}
	return lines
}

func TestClientReceivesEveryTypeFromTheReferenceServerAndACKs(t *testing.T) {
	addr, server, _ := startServer(t, "testdata/snapshot.json")
	code, out := captureStdout(t, func() int {
		return runClient([]string{"--server", addr, "--node-id", "ns/pod-1", "--node-cluster", "ns/agent/web", "--timeout", "10s"})
	})
	if code != 0 {
		t.Fatalf("client exit %d, printed:\n%s", code, out)
	}
	seen := map[string][]string{}
	for _, l := range clientLines(t, out) {
		if !l.Valid || l.Nacked {
			t.Errorf("response %+v: want valid and ACKed", l)
		}
		seen[l.Type] = l.Names
	}
	want := map[string]string{"cluster": "policy-server", "endpoint": "policy-server", "listener": "agent_http", "route": "policy_routes"}
	for typ, name := range want {
		if len(seen[typ]) != 1 || seen[typ][0] != name {
			t.Errorf("%s: names %v, want [%s]", typ, seen[typ], name)
		}
	}
	// The server saw an ACK of version 1 for every type, from the node the client named.
	waitFor(t, "four ACKs", func() bool {
		acked := map[string]bool{}
		for _, l := range server.lines(t) {
			if l.Ack && l.Version == "1" && l.NodeID == "ns/pod-1" && l.NodeCluster == "ns/agent/web" {
				acked[l.Type] = true
			}
		}
		return len(acked) == 4
	})
}

func TestNackFirstSendsANACKTheServerSees(t *testing.T) {
	addr, server, _ := startServer(t, "testdata/snapshot.json")
	code, out := captureStdout(t, func() int {
		return runClient([]string{"--server", addr, "--node-id", "ns/pod-1", "--node-cluster", "ns/agent/web", "--nack-first", "listener"})
	})
	if code != 0 {
		t.Fatalf("client exit %d, printed:\n%s", code, out)
	}
	waitFor(t, "the deliberate NACK", func() bool {
		for _, l := range server.lines(t) {
			if l.Type == "listener" && !l.Ack && l.Nonce != "" && strings.Contains(l.Error, "--nack-first") && l.Version == "" {
				return true
			}
		}
		return false
	})
}

func TestInvalidResourceIsNACKedAndTheClientFails(t *testing.T) {
	addr, server, _ := startServer(t, "testdata/invalid-cluster.json")
	code, out := captureStdout(t, func() int {
		return runClient([]string{"--server", addr, "--node-id", "n", "--node-cluster", "c", "--timeout", "5s"})
	})
	if code != 1 {
		t.Fatalf("client exit %d, want 1; printed:\n%s", code, out)
	}
	lines := clientLines(t, out)
	if l := lines[0]; l.Type != "cluster" || l.Valid || !strings.Contains(l.Error, "ConnectTimeout") {
		t.Errorf("first response %+v: want an invalid cluster naming ConnectTimeout", l)
	}
	waitFor(t, "the NACK", func() bool {
		for _, l := range server.lines(t) {
			if l.Type == "cluster" && !l.Ack && strings.Contains(l.Error, "ConnectTimeout") {
				return true
			}
		}
		return false
	})
}

func TestSighupServesTheFileAgain(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/snap.json"
	raw, _ := os.ReadFile("testdata/snapshot.json")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	addr, _, signals := startServer(t, file)
	if err := os.WriteFile(file, bytes.Replace(raw, []byte(`"version": "1"`), []byte(`"version": "2"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	signals <- syscall.SIGHUP
	waitFor(t, "version 2 served", func() bool {
		_, out := captureStdout(t, func() int {
			return runClient([]string{"--server", addr, "--node-id", "n", "--node-cluster", "c", "--expect", "cluster", "--timeout", "2s"})
		})
		return strings.Contains(out, `"version":"2"`)
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
