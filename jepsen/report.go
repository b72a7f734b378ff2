package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cofferhq/coffer/jepsen/check"
)

type report struct {
	dir     string
	verdict string
	text    string
}

// minOKWrites below which a run proves too little to be called valid.
const minOKWrites = 20

// checkDir checks a saved run and writes report.txt and results.json.
// extra holds results only the live run knows (liveness, coverage); they
// are saved in harness.json so --check-only sees them too.
func checkDir(dir string, timeout time.Duration, extra []check.Result) (*report, error) {
	hpath := filepath.Join(dir, "harness.json")
	if extra != nil {
		b, _ := json.MarshalIndent(extra, "", "  ")
		if err := os.WriteFile(hpath, b, 0o644); err != nil {
			return nil, err
		}
	} else if b, err := os.ReadFile(hpath); err == nil {
		json.Unmarshal(b, &extra)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f, err := check.Load(dir)
	if err != nil {
		return nil, err
	}
	var results []check.Result
	switch {
	case f.Failover != nil:
		results = check.FailoverAll(f)
	case f.Rotation != nil:
		results = check.RotationAll(f)
	default:
		results = check.All(f, timeout, dir)
	}
	counts := check.Count(f.Ops)
	okWrites := 0
	writeKinds := []string{check.KindPut, check.KindCreate}
	if f.Rotation != nil {
		// The rotation run's writes are its RotateSecrets (the three
		// creates of its setup prove nothing).
		writeKinds = []string{check.KindRotate}
	}
	for _, k := range writeKinds {
		if c := counts[k]; c != nil {
			okWrites += c[0]
		}
	}
	if okWrites < minOKWrites {
		results = append(results, check.Result{Name: "enough writes", Verdict: check.Unknown,
			Detail: fmt.Sprintf("only %d acknowledged writes (want %d)", okWrites, minOKWrites)})
	}
	results = append(results, extra...)
	windows := check.Unavailability(f)

	var info runInfo
	if b, err := os.ReadFile(filepath.Join(dir, "run.json")); err == nil {
		json.Unmarshal(b, &info)
	}
	var verdicts []string
	for _, r := range results {
		verdicts = append(verdicts, r.Verdict)
	}
	verdict := check.Worst(verdicts...)

	var sb strings.Builder
	netMode := info.Net
	if netMode == "" {
		netMode = "proxy" // runs recorded before --net existed
	}
	nodes := fmt.Sprint(info.Nodes)
	if info.ReplicaNodes > 0 {
		nodes = fmt.Sprintf("%d+%d", info.Nodes, info.ReplicaNodes)
	}
	fmt.Fprintf(&sb, "\ncoffer jepsen  scenario=%s  nodes=%s  net=%s  seed=%d  time-limit=%s\n", info.Scenario, nodes, netMode, info.Seed, info.TimeLimit)
	faults := map[string]int{}
	for _, e := range f.Events {
		if e.Phase == "start" {
			faults[e.Fault]++
		}
	}
	var fs []string
	for k, v := range faults {
		fs = append(fs, fmt.Sprintf("%s x%d", k, v))
	}
	sort.Strings(fs)
	if len(fs) == 0 {
		fs = []string{"none"}
	}
	fmt.Fprintf(&sb, "faults: %s\n\n", strings.Join(fs, ", "))

	tw := tabwriter.NewWriter(&sb, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "op\tattempted\tok\tfail\tunknown\t")
	var kinds []string
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		c := counts[k]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t\n", k, c[0]+c[1]+c[2], c[0], c[1], c[2])
	}
	tw.Flush()
	if c := counts[check.KindMove]; c != nil {
		refused := 0
		for _, o := range f.Ops {
			if o.Kind == check.KindMove && o.Status == check.StatusOK && o.Err != "" && !o.Final {
				refused++
			}
		}
		fmt.Fprintf(&sb, "(move ok includes %d compare-and-sets refused with InvalidParameterException)\n", refused)
	}
	churnErrs := map[string]int{}
	for _, o := range f.Ops {
		if check.IsChurn(o.Kind) && o.Status == check.StatusOK && o.Err != "" && !o.Final {
			churnErrs[strings.TrimSuffix(o.Err, "Exception")]++
		}
	}
	if len(churnErrs) > 0 {
		var es []string
		for e, n := range churnErrs {
			es = append(es, fmt.Sprintf("%d %s", n, e))
		}
		sort.Strings(es)
		fmt.Fprintf(&sb, "(churn ok includes definite error answers: %s)\n", strings.Join(es, ", "))
	}
	sb.WriteString("\n")
	tw = tabwriter.NewWriter(&sb, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "check\tverdict\tdetail\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", r.Name, r.Verdict, r.Detail)
	}
	tw.Flush()
	for _, r := range results {
		for _, e := range r.Errors {
			fmt.Fprintf(&sb, "  %s: %s\n", r.Name, e)
		}
	}
	if info.Scenario == "baseline" {
		if c := counts[check.KindPut]; c != nil && c[2] > 0 {
			fmt.Fprintf(&sb, "  warning: %d unknown puts without faults (timeouts too short, or a bug)\n", c[2])
		}
	}
	windowTable(&sb, "unavailability (fault start -> next ok write)", "not recovered", windows)
	elect := check.TimeToElect(f)
	if len(elect) > 0 {
		windowTable(&sb, "time to elect (leader fault start -> new leader, higher term; 100 ms samples)", "no new leader", elect)
	}
	sb.WriteString(check.FailoverReport(f))
	sb.WriteString(check.RotationReport(f))
	fmt.Fprintf(&sb, "\nverdict: %s   results: %s   (exit %d)\n", verdict, dir, exitCode(verdict))

	out := struct {
		Verdict  string         `json:"verdict"`
		Checks   []check.Result `json:"checks"`
		Counts   check.Counts   `json:"counts"`
		Windows  []check.Window `json:"unavailability"`
		Elect    []check.Window `json:"time_to_elect,omitempty"`
		Scenario runInfo        `json:"run"`
		// Failover: the region-failover figures (durations in ns).
		Failover *check.FailoverFigures `json:"failover,omitempty"`
	}{verdict, results, counts, windows, elect, info, nil}
	if f.Failover != nil {
		fig := check.Figures(f)
		out.Failover = &fig
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.txt"), []byte(sb.String()), 0o644); err != nil {
		return nil, err
	}
	return &report{dir: dir, verdict: verdict, text: sb.String()}, nil
}

// windowTable writes n, p50 and max of windows per fault kind and for
// all, and how many never ended (missing).
func windowTable(sb *strings.Builder, title, missing string, windows []check.Window) {
	sb.WriteString("\n")
	tw := tabwriter.NewWriter(sb, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tn\tp50\tmax\t%s\t\n", title, missing)
	byFault := map[string][]check.Window{}
	for _, w := range windows {
		byFault[w.Fault] = append(byFault[w.Fault], w)
	}
	var names []string
	for k := range byFault {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range append(names, "all") {
		ws := byFault[k]
		if k == "all" {
			ws = windows
		}
		n, p50, mx := check.Percentiles(ws)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t\n", k, n, p50.Round(time.Millisecond), mx.Round(time.Millisecond), len(ws)-n)
	}
	tw.Flush()
}
