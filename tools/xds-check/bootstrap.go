package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// DecisionCacheType is Tether's own HTTP filter, unknown to Envoy. Envoy skips an HTTP filter whose
// type it does not know only when the filter says `is_optional: true`; anywhere else it is an error.
const DecisionCacheType = "type.googleapis.com/tether.v1alpha1.DecisionCache"

// runBootstrap checks each file and prints `OK FILE` or `FILE: error`; 0 when every file passed.
func runBootstrap(files []string, out io.Writer) int {
	if len(files) == 0 {
		usage()
	}
	code := 0
	for _, f := range files {
		stripped, err := checkBootstrapFile(f)
		if err != nil {
			fmt.Fprintf(out, "%s: %v\n", f, err)
			code = 1
			continue
		}
		if len(stripped) > 0 {
			fmt.Fprintf(os.Stderr, "%s: skipped optional filters Envoy does not know: %s\n", f, strings.Join(stripped, ", "))
		}
		fmt.Fprintf(out, "OK %s\n", f)
	}
	return code
}

func checkBootstrapFile(file string) ([]string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return checkBootstrap(raw)
}

// checkBootstrap decodes YAML or JSON into envoy.config.bootstrap.v3.Bootstrap as Envoy does
// (unknown fields and unknown Any types are errors), then validates every message, including the
// content of every Any, and the cross-references Envoy checks at startup. It returns the paths of the
// optional DecisionCache filters it removed before decoding.
func checkBootstrap(raw []byte) ([]string, error) {
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("not YAML/JSON: %w", err)
	}
	var tree any
	if err := json.Unmarshal(js, &tree); err != nil {
		return nil, fmt.Errorf("not YAML/JSON: %w", err)
	}
	stripped, err := stripOptionalDecisionCache(tree, "")
	if err != nil {
		return nil, err
	}
	if js, err = json.Marshal(tree); err != nil {
		return nil, err
	}
	var b bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, &b); err != nil {
		return nil, fmt.Errorf("decode envoy.config.bootstrap.v3.Bootstrap: %w", err)
	}
	if err := validateDeep(&b, ""); err != nil {
		return nil, err
	}
	if errs := crossCheck(&b); len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	return stripped, nil
}

// stripOptionalDecisionCache removes, from every `http_filters` list, the filters whose typed_config
// is Tether's DecisionCache and that carry `is_optional: true` (what Envoy itself would skip). A
// DecisionCache anywhere else, or without is_optional, is an error naming its path.
func stripOptionalDecisionCache(node any, path string) ([]string, error) {
	var stripped []string
	switch n := node.(type) {
	case map[string]any:
		if t, _ := n["@type"].(string); t == DecisionCacheType {
			return nil, fmt.Errorf("%s: %s is not an Envoy type: it is allowed only as the typed_config of an HTTP filter with is_optional: true", orRoot(path), DecisionCacheType)
		}
		for k, v := range n {
			p := join(path, k)
			if list, ok := v.([]any); ok && k == "http_filters" {
				kept := list[:0:0]
				for i, f := range list {
					fp := fmt.Sprintf("%s[%d]", p, i)
					if fm, ok := f.(map[string]any); ok && isDecisionCache(fm) {
						if opt, _ := fm["is_optional"].(bool); !opt {
							return nil, fmt.Errorf("%s: HTTP filter %q has typed_config %s, which Envoy does not know: it needs is_optional: true", fp, fm["name"], DecisionCacheType)
						}
						stripped = append(stripped, fp)
						continue
					}
					kept = append(kept, f)
				}
				n[k] = kept
				v = kept
			}
			s, err := stripOptionalDecisionCache(v, p)
			if err != nil {
				return nil, err
			}
			stripped = append(stripped, s...)
		}
	case []any:
		for i, v := range n {
			s, err := stripOptionalDecisionCache(v, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			stripped = append(stripped, s...)
		}
	}
	return stripped, nil
}

func isDecisionCache(filter map[string]any) bool {
	tc, ok := filter["typed_config"].(map[string]any)
	if !ok {
		return false
	}
	t, _ := tc["@type"].(string)
	return t == DecisionCacheType
}

func orRoot(path string) string {
	if path == "" {
		return "(root)"
	}
	return path
}
