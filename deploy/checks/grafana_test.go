package checks

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	promql "github.com/prometheus/prometheus/promql/parser"
)

type grafanaPanel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource map[string]any           `json:"datasource"`
	GridPos    struct{ X, Y, W, H int } `json:"gridPos"`
	Targets    []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDashboard struct {
	Title      string         `json:"title"`
	UID        string         `json:"uid"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// exportedSeries is every series name a Coffer server can serve: those
// server/metrics.go declares (a histogram's _bucket, _sum and _count),
// and the Go and process collectors' that cmd/coffer/metrics.go registers.
// (hashicorp/raft's bridged figures are left out: the dashboard does not
// use them.)
func exportedSeries(t *testing.T) map[string]bool {
	t.Helper()
	src := readFile(t, "server", "metrics.go")
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`NewDesc\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"`).FindAllStringSubmatch(src, -1) {
		names[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`prometheus\.(Counter|Gauge|Histogram|Summary)Opts\{\s*Namespace:\s*"(\w+)",\s*Name:\s*"(\w+)"`).FindAllStringSubmatch(src, -1) {
		base := m[2] + "_" + m[3]
		names[base] = true
		if m[1] == "Histogram" || m[1] == "Summary" {
			names[base+"_sum"], names[base+"_count"] = true, true
		}
		if m[1] == "Histogram" {
			names[base+"_bucket"] = true
		}
	}
	for _, must := range []string{"coffer_requests_total", "coffer_request_duration_seconds_bucket", "coffer_raft_term", "coffer_sealed"} {
		if !names[must] {
			t.Fatalf("the scan of server/metrics.go found no %s: the pattern no longer matches the source", must)
		}
	}
	if !strings.Contains(readFile(t, "cmd", "coffer", "metrics.go"), "collectors.NewGoCollector(), collectors.NewProcessCollector(") {
		t.Fatal("cmd/coffer/metrics.go no longer registers the Go and process collectors as this test assumes")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if strings.HasSuffix(mf.GetName(), "_seconds") { // go_gc_duration_seconds: a summary
			names[mf.GetName()+"_sum"], names[mf.GetName()+"_count"] = true, true
		}
	}
	return names
}

var grafanaVar = regexp.MustCompile(`\$(?:\{(\w+)(?::\w+)?\}|(\w+))`)

func TestGrafanaDashboard(t *testing.T) {
	var d grafanaDashboard
	dec := json.NewDecoder(strings.NewReader(readFile(t, "deploy", "grafana", "coffer-dashboard.json")))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("coffer-dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Error("the dashboard needs a title and a uid")
	}
	vars := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	series := exportedSeries(t)
	used := map[string]bool{}
	ids := map[int]bool{}
	p := promql.NewParser(promql.Options{})
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, panel := range ps {
			if panel.Title == "" || panel.Type == "" {
				t.Errorf("panel %d: needs a title and a type", panel.ID)
			}
			if ids[panel.ID] {
				t.Errorf("panel id %d twice", panel.ID)
			}
			ids[panel.ID] = true
			if g := panel.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v outside Grafana's 24 columns", panel.Title, g)
			}
			if panel.Type != "row" && len(panel.Targets) == 0 {
				t.Errorf("panel %q queries nothing", panel.Title)
			}
			if len(panel.Targets) > 0 && panel.Datasource["uid"] != "${datasource}" {
				t.Errorf("panel %q: datasource %v, want the ${datasource} variable", panel.Title, panel.Datasource)
			}
			for _, tg := range panel.Targets {
				for _, m := range grafanaVar.FindAllStringSubmatch(tg.Expr, -1) {
					if name := m[1] + m[2]; !vars[name] {
						t.Errorf("panel %q: $%s is no variable of the dashboard", panel.Title, name)
					}
				}
				// Grafana's interval variables stand for a duration.
				expr := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h").Replace(tg.Expr)
				e, err := p.ParseExpr(expr)
				if err != nil {
					t.Errorf("panel %q, query %s: not PromQL: %v\n%s", panel.Title, tg.RefID, err, tg.Expr)
					continue
				}
				n := 0
				promql.Inspect(e, func(node promql.Node, _ []promql.Node) error {
					vs, ok := node.(*promql.VectorSelector)
					if !ok {
						return nil
					}
					name := vs.Name
					for _, lm := range vs.LabelMatchers {
						if lm.Name == "__name__" {
							name = lm.Value
						}
					}
					n++
					used[name] = true
					if !series[name] {
						t.Errorf("panel %q queries %s, which Coffer does not export", panel.Title, name)
					}
					return nil
				})
				if n == 0 {
					t.Errorf("panel %q, query %s selects no series", panel.Title, tg.RefID)
				}
			}
			walk(panel.Panels)
		}
	}
	walk(d.Panels)

	// The figures the dashboard exists for (docs/operations.md, Metrics).
	for _, must := range []string{"coffer_requests_total", "coffer_request_duration_seconds_bucket",
		"coffer_raft_term", "coffer_raft_commit_index", "coffer_raft_applied_index", "coffer_raft_leader", "coffer_sealed"} {
		if !used[must] {
			t.Errorf("no panel shows %s", must)
		}
	}
	if !slices.ContainsFunc(sorted(used), func(s string) bool { return strings.HasPrefix(s, "go_memstats_") }) {
		t.Error("no panel shows the Go memory (go_memstats_*)")
	}
	if !strings.Contains(readFile(t, "deploy", "grafana", "coffer-dashboard.json"), "histogram_quantile(0.99") {
		t.Error("no p99 latency from the histogram (histogram_quantile(0.99, ...))")
	}
	// Every coffer series it uses is in the operator's documentation.
	docs := readFile(t, "docs", "operations.md")
	for name := range used {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(name, "coffer_") && !strings.Contains(docs, "`"+base) {
			t.Errorf("%s is not in docs/operations.md's Metrics", base)
		}
	}
}
