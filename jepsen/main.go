// Command jepsen tests Coffer's consistency claims under real faults: it
// starts a region of real `coffer server` processes behind a
// fault-injecting TCP proxy, drives concurrent AWS SDK clients through a
// register workload (puts, reads by label, label moves, idempotent
// retries of unknown puts), a set workload and a create/delete churn
// workload, injects faults (kill, kill-leader, pause, partition-leader,
// partition: halves, one, ring, bridge), heals, reads everything back,
// compares the nodes' state digests, scans the nodes' files for
// plaintext values and their logs for panics, and checks the recorded
// history. The region-failover scenario (failover.go) runs two regions
// joined by the WAN pool instead, loses the primary one, promotes the
// replica and checks what each region showed and kept. See
// docs/jepsen.md.
//
//	go run ./jepsen --scenario short          # what `make jepsen-short` runs
//	go run ./jepsen --check-only results/DIR  # re-check a saved run
//
// Exit status: 0 valid, 1 invalid, 2 unknown, 254 bad flags, 255 harness
// error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cofferhq/coffer/jepsen/check"
)

// scenario is one preset: which faults, for how long, and the verdict it
// must come out with.
type scenario struct {
	name      string
	faults    []string
	timeLimit time.Duration
	unsafe    bool   // server runs with --unsafe-local-reads (faults build)
	expect    string // verdict that makes the scenario pass
	shapes    []string
	nodes     int              // 0: --nodes
	hold      [2]time.Duration // zero: --fault-duration
	// sticky starts every node with 5 s Raft timeouts, then restarts the
	// followers with the default ones: the first leader keeps believing
	// it leads for 5-10 s after it is cut off, while the others elect a
	// new leader within about 2 s.
	sticky bool
	churn  int // churn workers (0: none unless --churn-workers)
	// serverArgs are appended to every node's arguments (snapshot
	// settings, for instance).
	serverArgs []string
	// installs: the run must see a follower install a snapshot from the
	// leader, or its coverage is UNKNOWN.
	installs bool
	// failover: two regions, A (--nodes) and B (--replica-nodes), and
	// the region failover of failover.go instead of the single-region
	// workloads and nemesis.
	failover bool
	// rotation: the rotation workload of rotation.go (RotateSecret with
	// a webhook rotator the harness serves) instead of the register,
	// set and churn workloads.
	rotation bool
}

// tinySnapshots makes every node snapshot and compact its log every few
// dozen entries, so a follower that was cut off or replaced needs
// InstallSnapshot (research §3.2 item 8).
var tinySnapshots = []string{"--raft-snapshot-threshold", "64", "--raft-trailing-logs", "32", "--raft-snapshot-interval", "1s"}

var scenarios = map[string]scenario{
	"baseline":         {name: "baseline", timeLimit: 20 * time.Second, expect: check.Valid},
	"kill":             {name: "kill", faults: []string{"kill"}, timeLimit: 40 * time.Second, expect: check.Valid},
	"kill-leader":      {name: "kill-leader", faults: []string{"kill-leader"}, timeLimit: 45 * time.Second, expect: check.Valid},
	"pause":            {name: "pause", faults: []string{"pause"}, timeLimit: 40 * time.Second, expect: check.Valid},
	"partition-leader": {name: "partition-leader", faults: []string{"partition-leader"}, timeLimit: 45 * time.Second, expect: check.Valid},
	"mixed":            {name: "mixed", faults: faultKinds, timeLimit: 120 * time.Second, expect: check.Valid, churn: 4},
	"partition":        {name: "partition", faults: []string{"partition"}, shapes: []string{"halves", "one"}, timeLimit: 60 * time.Second, expect: check.Valid},
	"partition-ring":   {name: "partition-ring", faults: []string{"partition"}, shapes: []string{"ring"}, nodes: 5, timeLimit: 60 * time.Second, expect: check.Valid},
	"partition-bridge": {name: "partition-bridge", faults: []string{"partition"}, shapes: []string{"bridge"}, nodes: 5, timeLimit: 60 * time.Second, expect: check.Valid},
	"churn":            {name: "churn", faults: []string{"kill", "partition"}, shapes: []string{"halves", "one"}, timeLimit: 60 * time.Second, expect: check.Valid, churn: 6},
	"kill-all":         {name: "kill-all", faults: []string{"kill-all"}, timeLimit: 45 * time.Second, expect: check.Valid},
	"member":           {name: "member", faults: []string{"member"}, timeLimit: 60 * time.Second, expect: check.Valid, hold: [2]time.Duration{5 * time.Second, 10 * time.Second}},
	"clock":            {name: "clock", faults: []string{"clock"}, timeLimit: 45 * time.Second, expect: check.Valid},
	"snapshot": {name: "snapshot", faults: []string{"partition", "kill", "member"}, shapes: []string{"one"}, timeLimit: 60 * time.Second, expect: check.Valid,
		serverArgs: tinySnapshots, installs: true, hold: [2]time.Duration{5 * time.Second, 10 * time.Second}},
	"region-failover": {name: "region-failover", faults: []string{"kill-region", "promote"}, timeLimit: 60 * time.Second, expect: check.Valid, failover: true},
	"rotation": {name: "rotation", faults: []string{"kill-leader", "kill"}, timeLimit: 45 * time.Second, expect: check.Valid, rotation: true,
		serverArgs: []string{"--rotation-retry", "1s"}},
	"negative-control": {name: "negative-control", faults: []string{"partition-leader"}, timeLimit: 45 * time.Second, unsafe: true, expect: check.Invalid,
		sticky: true, hold: [2]time.Duration{6 * time.Second, 10 * time.Second}},
}

var presets = map[string][]string{
	"short": {"baseline", "kill", "kill-leader", "pause", "partition-leader", "member", "clock", "region-failover", "rotation"},
	"long": {"baseline", "kill", "kill-leader", "kill-all", "pause", "partition-leader", "partition", "partition-ring", "partition-bridge",
		"member", "clock", "snapshot", "churn", "mixed", "region-failover", "rotation"},
}

type options struct {
	scenarios       []scenario
	nodes           int
	replicaNodes    int // region-failover: nodes of the replica region
	seed            uint64
	results         string
	timeLimit       time.Duration
	longFactor      int
	rate            int
	registerWorkers int
	setWorkers      int
	churnWorkers    int // -1: the scenario's
	churnNames      int
	churnPerName    int
	groups          int
	opsPerKey       int
	requestTimeout  time.Duration
	checkTimeout    time.Duration
	gap, hold       [2]time.Duration
	bin             string
	keepData        bool
	serverArgs      []string
	checkOnly       string
	nemesis         []string // overrides every scenario's faults
	shapes          []string // overrides every scenario's partition shapes
	labelMoves      bool
	retries         bool
	net             string // proxy or netns
	holdSet         bool   // --fault-duration given
	nodesSet        bool   // --nodes given
}

func main() {
	os.Exit(run())
}

func parseRange(s string) ([2]time.Duration, error) {
	lo, hi, found := strings.Cut(s, "-")
	a, err := time.ParseDuration(lo)
	if err != nil {
		return [2]time.Duration{}, err
	}
	if !found {
		return [2]time.Duration{a, a}, nil
	}
	b, err := time.ParseDuration(hi)
	return [2]time.Duration{a, b}, err
}

func parseFlags() (options, error) {
	var o options
	var scen, gap, hold, hb, el, lease, nem, shapes string
	fs := flag.NewFlagSet("jepsen", flag.ContinueOnError)
	fs.StringVar(&scen, "scenario", "short", "comma-separated scenarios or presets (short, long); one of: baseline, kill, kill-leader, kill-all, pause, partition-leader, partition, partition-ring, partition-bridge, member, clock, snapshot, churn, mixed, region-failover, rotation, negative-control")
	fs.IntVar(&o.nodes, "nodes", 3, "nodes in the region (region-failover: in the primary region)")
	fs.IntVar(&o.replicaNodes, "replica-nodes", 3, "region-failover: nodes in the replica region")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the fault schedule and op mix (0: random; printed)")
	fs.StringVar(&o.results, "results", "results", "folder for results")
	fs.DurationVar(&o.timeLimit, "time-limit", 0, "main phase of each scenario (0: the scenario's default)")
	fs.IntVar(&o.longFactor, "scale", 1, "multiply every scenario's default time limit (make jepsen uses 4)")
	fs.IntVar(&o.rate, "rate", 120, "target client operations per second, all workers together")
	fs.IntVar(&o.registerWorkers, "register-workers", 9, "register workers (pinned round-robin to nodes)")
	fs.IntVar(&o.setWorkers, "set-workers", 3, "set (CreateSecret) workers")
	fs.IntVar(&o.churnWorkers, "churn-workers", -1, "create/delete churn workers (-1: the scenario's; 6 in churn, 4 in mixed, 0 elsewhere)")
	fs.IntVar(&o.churnNames, "churn-names", 4, "churn names in use at once")
	fs.IntVar(&o.churnPerName, "churn-ops-per-name", 40, "churn ops per name (on average) before the churn workers move to fresh names")
	fs.IntVar(&o.groups, "keys", 3, "register secrets in use at once (workers per secret = register-workers/keys)")
	fs.IntVar(&o.opsPerKey, "ops-per-key", 150, "register ops on one secret before its workers move to a fresh one")
	fs.DurationVar(&o.requestTimeout, "request-timeout", 2*time.Second, "client timeout of one request")
	fs.DurationVar(&o.checkTimeout, "check-timeout", 2*time.Minute, "porcupine timeout per secret")
	fs.StringVar(&gap, "interval", "4s-8s", "healthy time before each fault (d or min-max)")
	fs.StringVar(&hold, "fault-duration", "3s-10s", "how long a fault is held (d or min-max)")
	fs.StringVar(&o.bin, "bin", "", "coffer binary to run (default: build ./cmd/coffer; with -tags faults for negative-control and the clock fault, which need one)")
	fs.BoolVar(&o.keepData, "keep-data", false, "keep node data dirs of valid runs")
	fs.StringVar(&hb, "raft-heartbeat-timeout", "", "passed to coffer server (default: the server's)")
	fs.StringVar(&el, "raft-election-timeout", "", "passed to coffer server")
	fs.StringVar(&lease, "raft-leader-lease-timeout", "", "passed to coffer server")
	fs.StringVar(&o.net, "net", "proxy", "how links are cut: proxy (a TCP proxy in front of every cluster port; gossip is not cut) or netns (root only: a network namespace per node on a private bridge; blackhole routes cut every packet, gossip included)")
	fs.StringVar(&o.checkOnly, "check-only", "", "re-check a saved results folder and exit")
	fs.StringVar(&nem, "nemesis", "", "faults to draw from, overriding the scenario's: "+strings.Join(faultKinds, ","))
	fs.StringVar(&shapes, "partition", "", "shapes for the partition fault, overriding the scenario's: "+strings.Join(partitionShapes, ",")+" (ring needs --nodes 5)")
	fs.BoolVar(&o.labelMoves, "label-moves", true, "register workers also read AWSPREVIOUS and move AWSCURRENT with UpdateSecretVersionStage (compare-and-set on RemoveFromVersionId)")
	fs.BoolVar(&o.retries, "retry-unknown", true, "register workers resend a put whose outcome was unknown with the same token and value until it is acknowledged (idempotent retries)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return o, err
	}
	var err error
	if o.gap, err = parseRange(gap); err != nil {
		return o, fmt.Errorf("--interval: %w", err)
	}
	if o.hold, err = parseRange(hold); err != nil {
		return o, fmt.Errorf("--fault-duration: %w", err)
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "fault-duration":
			o.holdSet = true
		case "nodes":
			o.nodesSet = true
		}
	})
	if nem != "" {
		for _, x := range strings.Split(nem, ",") {
			if !contains(faultKinds, strings.TrimSpace(x)) {
				return o, fmt.Errorf("--nemesis: unknown fault %q", x)
			}
			o.nemesis = append(o.nemesis, strings.TrimSpace(x))
		}
	}
	if shapes != "" {
		for _, x := range strings.Split(shapes, ",") {
			if !contains(partitionShapes, strings.TrimSpace(x)) {
				return o, fmt.Errorf("--partition: unknown shape %q", x)
			}
			o.shapes = append(o.shapes, strings.TrimSpace(x))
		}
	}
	for flagName, v := range map[string]string{"--raft-heartbeat-timeout": hb, "--raft-election-timeout": el, "--raft-leader-lease-timeout": lease} {
		if v != "" {
			o.serverArgs = append(o.serverArgs, flagName, v)
		}
	}
	for _, name := range strings.Split(scen, ",") {
		name = strings.TrimSpace(name)
		if p, ok := presets[name]; ok {
			for _, s := range p {
				o.scenarios = append(o.scenarios, scenarios[s])
			}
			continue
		}
		s, ok := scenarios[name]
		if !ok {
			return o, fmt.Errorf("unknown scenario %q", name)
		}
		o.scenarios = append(o.scenarios, s)
	}
	if o.nodes < 1 || o.replicaNodes < 1 || o.registerWorkers < 1 || o.groups < 1 || o.rate < 1 || o.opsPerKey < 2 || o.churnNames < 1 || o.churnPerName < 1 {
		return o, errors.New("--nodes, --replica-nodes, --register-workers, --keys, --rate, --ops-per-key, --churn-names and --churn-ops-per-name must be positive")
	}
	switch o.net {
	case "proxy":
	case "netns":
		if err := netnsAvailable(); err != nil {
			return o, err
		}
	default:
		return o, fmt.Errorf("--net: %q is neither proxy nor netns", o.net)
	}
	if o.seed == 0 {
		o.seed = rand.Uint64() >> 1
	}
	return o, nil
}

func run() int {
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "jepsen:", err)
		return 254
	}
	if o.checkOnly != "" {
		rep, err := checkDir(o.checkOnly, o.checkTimeout, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "jepsen:", err)
			return 255
		}
		fmt.Print(rep.text)
		return exitCode(rep.verdict)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := os.MkdirTemp("", "coffer-jepsen-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "jepsen:", err)
		return 255
	}
	defer os.RemoveAll(root)
	bins := map[bool]string{}
	binFor := func(faults bool) (string, error) {
		if o.bin != "" {
			return o.bin, nil
		}
		if b, ok := bins[faults]; ok {
			return b, nil
		}
		dir, tags := filepath.Join(root, "release"), ""
		if faults {
			dir, tags = filepath.Join(root, "faults"), "faults"
		}
		os.MkdirAll(dir, 0o755)
		fmt.Printf("building coffer (tags %q)...\n", tags)
		b, err := buildBinary(dir, tags)
		if err == nil {
			bins[faults] = b
		}
		return b, err
	}

	var summaries []string
	var anyInvalid, anyUnknown, anyError bool
	for i, sc := range o.scenarios {
		if ctx.Err() != nil {
			return 255
		}
		bin, err := binFor(needsFaultsBuild(o, sc))
		if err != nil {
			fmt.Fprintln(os.Stderr, "jepsen:", err)
			return 255
		}
		seed := o.seed + uint64(i)
		rep, err := runScenario(ctx, o, sc, bin, seed)
		if err != nil {
			fmt.Fprintf(os.Stderr, "jepsen: scenario %s (seed %d): %v\n", sc.name, seed, err)
			summaries = append(summaries, fmt.Sprintf("%-18s ERROR    seed=%d  %v", sc.name, seed, err))
			anyError = true
			continue
		}
		pass := rep.verdict == sc.expect
		mark := "pass"
		if !pass {
			mark = "FAIL"
			if rep.verdict == check.Unknown {
				anyUnknown = true
			} else {
				anyInvalid = true
			}
		}
		summaries = append(summaries, fmt.Sprintf("%-18s %-8s %s (expected %s)  seed=%d  %s", sc.name, rep.verdict, mark, sc.expect, seed, rep.dir))
	}
	fmt.Println("\n== scenarios")
	for _, s := range summaries {
		fmt.Println(s)
	}
	switch {
	case anyInvalid:
		return 1
	case anyError:
		return 255
	case anyUnknown:
		return 2
	}
	return 0
}

// needsFaultsBuild: the negative control and the clock fault exist only
// in a `-tags faults` build of coffer.
func needsFaultsBuild(o options, sc scenario) bool {
	faults := sc.faults
	if o.nemesis != nil {
		faults = o.nemesis
	}
	return sc.unsafe || contains(faults, "clock")
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func exitCode(verdict string) int {
	switch verdict {
	case check.Valid:
		return 0
	case check.Invalid:
		return 1
	}
	return 2
}

type runInfo struct {
	Scenario   string   `json:"scenario"`
	Seed       uint64   `json:"seed"`
	Nodes      int      `json:"nodes"`
	Net        string   `json:"net,omitempty"`
	Faults     []string `json:"faults"`
	Shapes     []string `json:"partition_shapes,omitempty"`
	LabelMoves bool     `json:"label_moves,omitempty"`
	Retries    bool     `json:"retry_unknown,omitempty"`
	TimeLimit  string   `json:"time_limit"`
	Unsafe     bool     `json:"unsafe_local_reads"`
	Rate       int      `json:"rate"`
	Workers    int      `json:"register_workers"`
	Churn      int      `json:"churn_workers,omitempty"`
	Keys       int      `json:"keys"`
	OpsPerKey  int      `json:"ops_per_key"`
	Started    string   `json:"started"`
	Bin        string   `json:"bin"`
	Args       []string `json:"args"`
	// ReplicaNodes and Regions: region-failover runs (Nodes is then the
	// primary region's).
	ReplicaNodes int      `json:"replica_nodes,omitempty"`
	Regions      []string `json:"regions,omitempty"`
}

func runScenario(ctx context.Context, o options, sc scenario, bin string, seed uint64) (*report, error) {
	if sc.failover {
		return runFailover(ctx, o, sc, bin, seed)
	}
	if sc.rotation {
		return runRotation(ctx, o, sc, bin, seed)
	}
	limit := sc.timeLimit * time.Duration(o.longFactor)
	if o.timeLimit > 0 {
		limit = o.timeLimit
	}
	if o.nemesis != nil {
		sc.faults = o.nemesis
	}
	if o.shapes != nil {
		sc.shapes = o.shapes
	}
	if len(sc.shapes) == 0 {
		sc.shapes = []string{"halves", "one"}
	}
	if sc.nodes == 0 || o.nodesSet {
		sc.nodes = o.nodes
	}
	o.nodes = sc.nodes
	if o.churnWorkers >= 0 {
		sc.churn = o.churnWorkers
	}
	if sc.hold == ([2]time.Duration{}) || o.holdSet {
		sc.hold = o.hold
	}
	start := time.Now().UTC()
	dir := filepath.Join(o.results, start.Format("20060102T150405Z")+"-"+sc.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) {
		fmt.Printf("[%s %6.1fs] %s\n", sc.name, time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	logf("seed=%d nodes=%d faults=%v time-limit=%s results=%s", seed, o.nodes, sc.faults, limit, dir)
	rng := rand.New(rand.NewPCG(seed, 0x6a657073656e))
	info := runInfo{Scenario: sc.name, Seed: seed, Nodes: o.nodes, Net: o.net, Faults: sc.faults, Shapes: sc.shapes, LabelMoves: o.labelMoves, Retries: o.retries, TimeLimit: limit.String(),
		Unsafe: sc.unsafe, Rate: o.rate, Workers: o.registerWorkers, Churn: sc.churn, Keys: o.groups, OpsPerKey: o.opsPerKey,
		Started: start.Format(time.RFC3339), Bin: bin, Args: os.Args[1:]}
	if b, err := json.MarshalIndent(info, "", "  "); err == nil {
		os.WriteFile(filepath.Join(dir, "run.json"), b, 0o644)
	}

	creds := rootCreds{AccessKeyID: fmt.Sprintf("AKIAJEPSEN%010d", seed%1e10), SecretAccessKey: fmt.Sprintf("jepsen/secret/%016x", rng.Uint64())}
	extra := append(append([]string{}, sc.serverArgs...), o.serverArgs...)
	if sc.unsafe {
		extra = append(extra, "--unsafe-local-reads")
	}
	sticky := []string{"--raft-heartbeat-timeout", "5s", "--raft-election-timeout", "5s", "--raft-leader-lease-timeout", "5s"}
	if sc.sticky {
		extra = append(extra, sticky...)
	}
	var netw network
	var nsNet *netnsNet
	if o.net == "netns" {
		nn, err := startNetns(netnsPrefix, netnsSubnet, o.nodes)
		if err != nil {
			return nil, err
		}
		netw, nsNet = nn, nn
	}
	ns, err := setupNodes(bin, dir, o.nodes, creds, extra, needsFaultsBuild(o, sc), nsNet)
	if err != nil {
		if netw != nil {
			netw.close()
		}
		return nil, err
	}
	if netw == nil {
		if netw, err = startProxy(ns); err != nil {
			return nil, err
		}
	}
	defer netw.close()
	defer func() {
		for _, nd := range ns.list {
			nd.stop()
		}
	}()
	if err := ns.up(ctx, bin); err != nil {
		return nil, err
	}
	logf("cluster up: %d nodes", len(ns.list))
	if sc.sticky {
		l := ns.leader(ctx)
		if l == nil {
			return nil, errors.New("sticky: no leader")
		}
		for _, nd := range ns.list {
			if nd == l {
				continue
			}
			nd.kill()
			nd.args = nd.args[:len(nd.args)-len(sticky)]
			if err := nd.start(bin); err != nil {
				return nil, err
			}
			if _, err := ns.waitConverged(ctx, 60*time.Second); err != nil {
				return nil, err
			}
		}
		now := ns.leader(ctx)
		if now != l {
			return nil, errors.New("sticky: leadership moved while restarting the followers")
		}
		logf("sticky leader %s (5s lease); followers restarted with default Raft timeouts", l.id)
	}

	files, closeFiles, err := createFiles(dir, "history.jsonl", "final.jsonl", "nemesis.jsonl", "samples.jsonl")
	if err != nil {
		return nil, err
	}
	defer closeFiles()
	hist, final, nem := check.NewWriter(files["history.jsonl"]), check.NewWriter(files["final.jsonl"]), check.NewWriter(files["nemesis.jsonl"])
	rec := &recorder{base: start, w: hist}
	// The run id is 12 hex digits whatever the seed: tokens built on it
	// must be 32 characters or more, and a small --seed (--seed 101) gave
	// "65", so every token was refused.
	run := fmt.Sprintf("%012x", seed)
	w := &workload{rec: rec, run: run[:12], timeout: o.requestTimeout,
		groups: o.groups, perKey: o.opsPerKey, moves: o.labelMoves, retries: o.retries,
		churnNames: o.churnNames, churnPerName: o.churnPerName, churnSeen: map[string]bool{}}
	for _, nd := range ns.list {
		w.clients = append(w.clients, newClient("https://"+nd.api, creds))
		w.nodeIDs = append(w.nodeIDs, nd.id)
	}
	// Enough secrets that no group wraps around (versions per secret stay
	// well under the 100-version limit).
	regShare := float64(o.registerWorkers) / float64(o.registerWorkers+o.setWorkers+sc.churn)
	nSecrets := o.groups + int(limit.Seconds()*float64(o.rate)*regShare/float64(o.opsPerKey)) + o.groups
	if err := w.setup(ctx, nSecrets); err != nil {
		return nil, err
	}
	logf("setup: %d register secrets", nSecrets)

	// Main phase.
	mainCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	nWorkers := o.registerWorkers + o.setWorkers + sc.churn
	interval := time.Duration(float64(time.Second) * float64(nWorkers) / float64(o.rate))
	done := make(chan struct{}, nWorkers+1)
	for k := range o.registerWorkers {
		// Group g's workers go to consecutive nodes starting at g, so each
		// secret is used from several nodes and, with 5 nodes, every node
		// has clients.
		g := k % o.groups
		node := (k/o.groups + g) % len(ns.list)
		wrng := rand.New(rand.NewPCG(seed, uint64(k)))
		go func() { w.registerWorker(mainCtx, g, node, interval, wrng); done <- struct{}{} }()
	}
	for k := range o.setWorkers {
		go func() { w.setWorker(mainCtx, (o.registerWorkers+k)%len(ns.list), interval); done <- struct{}{} }()
	}
	for k := range sc.churn {
		wrng := rand.New(rand.NewPCG(seed, uint64(1000+k)))
		go func() {
			w.churnWorker(mainCtx, (o.registerWorkers+o.setWorkers+k)%len(ns.list), interval, wrng)
			done <- struct{}{}
		}()
	}
	samples := check.NewWriter(files["samples.jsonl"])
	sampled := make(chan struct{})
	go func() { ns.sample(mainCtx, rec, samples); close(sampled) }()
	nm := &nemesis{faults: sc.faults, ns: ns, net: netw, rec: rec, w: nem, rng: rng, gap: o.gap, hold: sc.hold, logf: logf, shapes: sc.shapes}
	go func() { nm.run(mainCtx); done <- struct{}{} }()
	for range nWorkers + 1 {
		<-done
	}
	<-sampled
	samples.Flush()
	logf("main phase over; %d faults injected; healing", nm.injected)

	// Heal and recover: every node up, a write succeeds, indexes converge.
	nm.healAll()
	liveness := check.Result{Name: "liveness after heal", Verdict: check.Valid}
	healT := time.Now()
	recovered := false
	for time.Since(healT) < 60*time.Second && ctx.Err() == nil {
		i := rng.IntN(len(w.clients))
		if op := w.put(context.Background(), i, rec.newProcess(), w.secrets[0], false); op.Status == check.StatusOK {
			recovered = true
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if recovered {
		_, err = ns.waitConverged(ctx, 60*time.Second)
	}
	switch {
	case !recovered:
		liveness.Verdict, liveness.Detail = check.Invalid, "no write succeeded within 60s of healing"
	case err != nil:
		liveness.Verdict, liveness.Detail = check.Invalid, err.Error()
	default:
		liveness.Detail = fmt.Sprintf("write ok and nodes converged %.1fs after heal", time.Since(healT).Seconds())
	}
	logf("%s", liveness.Detail)

	// Final reads.
	hist.Flush()
	ops, err := check.ReadJSONL[check.Op](filepath.Join(dir, "history.jsonl"))
	if err != nil {
		return nil, err
	}
	w.finalReads(ops, final)
	hist.Flush()
	final.Flush()
	nem.Flush()
	logf("final reads done")

	// Convergence: every node at one applied index with one state digest.
	sf, err := os.Create(filepath.Join(dir, "status.jsonl"))
	if err != nil {
		return nil, err
	}
	defer sf.Close()
	sw := check.NewWriter(sf)
	conv, polls := ns.pollDigests(ctx, rec, sw, 30*time.Second)
	sw.Flush()
	logf("state digests: converged=%v after %d polls", conv, polls)
	for _, nd := range ns.list {
		nd.stop()
	}
	if err := dumpRaftLogs(dir, ns.list); err != nil {
		logf("raft log dump: %v", err) // the raft log check says UNKNOWN or checks fewer logs
	}

	// Plaintext: no value marker in any node's data dir or log.
	var roots []string
	for _, nd := range ns.list {
		roots = append(roots, nd.dataDir, nd.logPath)
	}
	scan := check.ScanForMarker(w.marker(), roots...)
	if b, err := json.MarshalIndent(scan, "", "  "); err == nil {
		os.WriteFile(filepath.Join(dir, "plaintext.json"), b, 0o644)
	}
	logf("plaintext scan: %d files, %d hits", scan.Files, len(scan.Hits))

	extraResults := []check.Result{liveness}
	if len(sc.faults) > 0 && nm.injected == 0 {
		extraResults = append(extraResults, check.Result{Name: "coverage", Verdict: check.Unknown, Detail: "no fault was injected"})
	}
	if sc.installs {
		// raft logs this line on a follower when a snapshot from the
		// leader replaced its state.
		n := 0
		for _, nd := range ns.list {
			b, _ := os.ReadFile(nd.logPath)
			n += strings.Count(string(b), "Installed remote snapshot")
		}
		r := check.Result{Name: "coverage: snapshot installs", Verdict: check.Valid, Detail: fmt.Sprintf("%d snapshots installed from the leader", n)}
		if n == 0 {
			r.Verdict, r.Detail = check.Unknown, "no follower installed a snapshot: the restore path was not exercised"
		}
		extraResults = append(extraResults, r)
		logf("%s", r.Detail)
	}
	rep, err := checkDir(dir, o.checkTimeout, extraResults)
	if err != nil {
		return nil, err
	}
	fmt.Print(rep.text)
	if rep.verdict == check.Valid && !o.keepData {
		for _, nd := range ns.list {
			os.RemoveAll(nd.dataDir)
		}
	}
	return rep, nil
}
