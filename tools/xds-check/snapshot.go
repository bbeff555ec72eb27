package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
)

// snapshotFile is the server's input: Envoy JSON resources, each with its "@type".
type snapshotFile struct {
	Version   string            `json:"version"`
	Clusters  []json.RawMessage `json:"clusters"`
	Endpoints []json.RawMessage `json:"endpoints"`
	Listeners []json.RawMessage `json:"listeners"`
	Routes    []json.RawMessage `json:"routes"`
}

// loadSnapshot reads FILE into a go-control-plane snapshot. Resources are decoded strictly (unknown
// fields are errors) but not validated: a snapshot may hold an invalid resource on purpose, to test
// a client's NACK.
func loadSnapshot(path string) (*cachev3.Snapshot, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f snapshotFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Version == "" {
		return nil, fmt.Errorf("%s: version is required", path)
	}
	resources := map[resource.Type][]types.Resource{}
	for _, group := range []struct {
		key     string
		typeURL string
		items   []json.RawMessage
	}{
		{"clusters", resource.ClusterType, f.Clusters},
		{"endpoints", resource.EndpointType, f.Endpoints},
		{"listeners", resource.ListenerType, f.Listeners},
		{"routes", resource.RouteType, f.Routes},
	} {
		for i, item := range group.items {
			var a anypb.Any
			if err := protojson.Unmarshal(item, &a); err != nil {
				return nil, fmt.Errorf("%s: %s[%d]: %w", path, group.key, i, err)
			}
			if a.GetTypeUrl() != group.typeURL {
				return nil, fmt.Errorf("%s: %s[%d]: @type %s, want %s", path, group.key, i, a.GetTypeUrl(), group.typeURL)
			}
			m, err := a.UnmarshalNew()
			if err != nil {
				return nil, fmt.Errorf("%s: %s[%d]: %w", path, group.key, i, err)
			}
			resources[group.typeURL] = append(resources[group.typeURL], m)
		}
	}
	return cachev3.NewSnapshot(f.Version, resources)
}
