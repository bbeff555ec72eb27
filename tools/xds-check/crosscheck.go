package main

import (
	"fmt"
	"net/netip"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

const (
	routerType     = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
	hcmType        = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	httpOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// crossCheck holds the startup checks Envoy makes beyond the protos' validation rules: unique names
// and addresses, references to clusters that exist, the ADS cluster, STATIC and LOGICAL_DNS
// endpoints, and a router as the last HTTP filter.
func crossCheck(b *bootstrapv3.Bootstrap) []string {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	static := b.GetStaticResources()
	ads := b.GetDynamicResources().GetAdsConfig()

	clusters := map[string]*clusterv3.Cluster{}
	for i, c := range static.GetClusters() {
		p := fmt.Sprintf("static_resources.clusters[%d]", i)
		if _, dup := clusters[c.GetName()]; dup {
			bad("%s: duplicate cluster name %q", p, c.GetName())
		}
		clusters[c.GetName()] = c
		errs = append(errs, checkCluster(p, c, ads != nil)...)
	}

	listeners := map[string]bool{}
	addresses := map[string]string{}
	for i, l := range static.GetListeners() {
		p := fmt.Sprintf("static_resources.listeners[%d]", i)
		if listeners[l.GetName()] {
			bad("%s: duplicate listener name %q", p, l.GetName())
		}
		listeners[l.GetName()] = true
		if sa := l.GetAddress().GetSocketAddress(); sa != nil {
			key := fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
			if other, dup := addresses[key]; dup && sa.GetPortValue() != 0 {
				bad("%s: listener %q has the same address %s as listener %q", p, l.GetName(), key, other)
			}
			addresses[key] = l.GetName()
		}
		errs = append(errs, checkListener(p, l, clusters)...)
	}

	if ads != nil {
		for i, g := range ads.GetGrpcServices() {
			name := g.GetEnvoyGrpc().GetClusterName()
			if name == "" {
				continue
			}
			p := fmt.Sprintf("dynamic_resources.ads_config.grpc_services[%d].envoy_grpc.cluster_name", i)
			c, ok := clusters[name]
			if !ok {
				bad("%s: %q is not a static cluster (Envoy requires the ADS cluster in static_resources)", p, name)
			} else if !speaksHTTP2(c) {
				bad("%s: cluster %q does not speak HTTP/2 (gRPC needs typed_extension_protocol_options %s with http2_protocol_options)", p, name, httpOptionsKey)
			}
		}
	}
	return errs
}

func checkCluster(p string, c *clusterv3.Cluster, hasADS bool) []string {
	var errs []string
	if eds := c.GetEdsClusterConfig().GetEdsConfig(); eds != nil && eds.GetAds() != nil && !hasADS {
		errs = append(errs, fmt.Sprintf("%s.eds_cluster_config.eds_config.ads: no dynamic_resources.ads_config to serve it", p))
	}
	la := c.GetLoadAssignment()
	switch c.GetType() {
	case clusterv3.Cluster_STATIC:
		for i, le := range la.GetEndpoints() {
			for j, lb := range le.GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				if sa == nil {
					continue
				}
				if _, err := netip.ParseAddr(sa.GetAddress()); err != nil {
					errs = append(errs, fmt.Sprintf("%s.load_assignment.endpoints[%d].lb_endpoints[%d]: a STATIC cluster needs an IP address, not %q", p, i, j, sa.GetAddress()))
				}
			}
		}
	case clusterv3.Cluster_LOGICAL_DNS:
		if len(la.GetEndpoints()) != 1 || len(la.GetEndpoints()[0].GetLbEndpoints()) != 1 {
			errs = append(errs, fmt.Sprintf("%s: LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint", p))
		}
	}
	return errs
}

func speaksHTTP2(c *clusterv3.Cluster) bool {
	if c.GetHttp2ProtocolOptions() != nil { //nolint:staticcheck // the deprecated field still works in Envoy
		return true
	}
	a, ok := c.GetTypedExtensionProtocolOptions()[httpOptionsKey]
	if !ok {
		return false
	}
	var o httpv3.HttpProtocolOptions
	if err := a.UnmarshalTo(&o); err != nil {
		return false
	}
	return o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil ||
		o.GetUseDownstreamProtocolConfig().GetHttp2ProtocolOptions() != nil ||
		o.GetAutoConfig().GetHttp2ProtocolOptions() != nil
}

func checkListener(p string, l *listenerv3.Listener, clusters map[string]*clusterv3.Cluster) []string {
	var errs []string
	chains := l.GetFilterChains()
	if l.GetDefaultFilterChain() != nil {
		chains = append(chains, l.GetDefaultFilterChain())
	}
	for i, fc := range chains {
		for j, f := range fc.GetFilters() {
			if f.GetTypedConfig().GetTypeUrl() != hcmType {
				continue
			}
			var hcm hcmv3.HttpConnectionManager
			if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
				continue // validateDeep reported it
			}
			fp := fmt.Sprintf("%s.filter_chains[%d].filters[%d].typed_config", p, i, j)
			errs = append(errs, checkHCM(fp, &hcm, clusters)...)
		}
	}
	return errs
}

func checkHCM(p string, hcm *hcmv3.HttpConnectionManager, clusters map[string]*clusterv3.Cluster) []string {
	var errs []string
	filters := hcm.GetHttpFilters()
	for i, f := range filters {
		last := i == len(filters)-1
		isRouter := f.GetTypedConfig().GetTypeUrl() == routerType
		if isRouter && !last {
			errs = append(errs, fmt.Sprintf("%s.http_filters[%d]: terminal filter %q must be the last filter in a http filter chain", p, i, f.GetName()))
		}
		if last && !isRouter {
			errs = append(errs, fmt.Sprintf("%s.http_filters[%d]: non-terminal filter %q is the last filter in a http filter chain", p, i, f.GetName()))
		}
	}
	rc := hcm.GetRouteConfig()
	// clusters is nil for a listener that arrives before any cluster: nothing to check against yet.
	if rc == nil || clusters == nil || (rc.GetValidateClusters() != nil && !rc.GetValidateClusters().GetValue()) {
		return errs
	}
	for i, vh := range rc.GetVirtualHosts() {
		for j, r := range vh.GetRoutes() {
			rp := fmt.Sprintf("%s.route_config.virtual_hosts[%d].routes[%d].route", p, i, j)
			if b := r.GetRoute().GetRetryPolicy().GetRetryBackOff(); b.GetMaxInterval() != nil &&
				b.GetMaxInterval().AsDuration() < b.GetBaseInterval().AsDuration() {
				errs = append(errs, fmt.Sprintf("%s.retry_policy.retry_back_off: max_interval must be greater than or equal to the base_interval", rp))
			}
			for _, name := range routeClusters(r.GetRoute()) {
				if _, ok := clusters[name]; !ok {
					errs = append(errs, fmt.Sprintf("%s: route references unknown cluster %q (inline route configs validate clusters)", rp, name))
				}
			}
		}
	}
	return errs
}

func routeClusters(a *routev3.RouteAction) []string {
	if a == nil {
		return nil
	}
	if c := a.GetCluster(); c != "" {
		return []string{c}
	}
	var out []string
	for _, w := range a.GetWeightedClusters().GetClusters() {
		out = append(out, w.GetName())
	}
	return out
}
