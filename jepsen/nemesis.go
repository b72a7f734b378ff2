package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"syscall"
	"time"

	"github.com/cofferhq/coffer/jepsen/check"
)

// Faults the nemesis can inject. clock needs a faults build of coffer
// (the harness builds one when a scenario uses it).
var faultKinds = []string{"kill", "kill-leader", "kill-all", "pause", "partition-leader", "partition", "member", "clock"}

// nemesis injects one fault at a time: wait a healthy gap, inject, hold,
// heal. Every start and stop goes to nemesis.jsonl.
type nemesis struct {
	faults   []string
	ns       *nodes
	net      network
	rec      *recorder
	w        *check.Writer
	rng      *rand.Rand
	gap      [2]time.Duration // healthy time before each fault
	hold     [2]time.Duration // how long a fault is held
	logf     func(string, ...any)
	injected int
	shapes   []string // partition shapes to draw from
}

func (n *nemesis) between(r [2]time.Duration) time.Duration {
	if r[1] <= r[0] {
		return r[0]
	}
	return r[0] + time.Duration(n.rng.Int64N(int64(r[1]-r[0])))
}

func (n *nemesis) event(phase, fault string, nd *node, detail string) {
	e := check.Event{Time: n.rec.now(), Phase: phase, Fault: fault, Detail: detail}
	if nd != nil {
		e.Node = nd.id
	}
	n.w.Write(e)
	n.logf("nemesis %-5s %-16s %s %s", phase, fault, e.Node, detail)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// run injects faults until ctx ends; the fault in progress is always
// healed before it returns.
func (n *nemesis) run(ctx context.Context) {
	if len(n.faults) == 0 {
		return
	}
	for {
		if !sleepCtx(ctx, n.between(n.gap)) {
			return
		}
		fault := n.faults[n.rng.IntN(len(n.faults))]
		hold := n.between(n.hold)
		if !n.inject(ctx, fault, hold) {
			return
		}
	}
}

func (n *nemesis) pick(ctx context.Context, leader bool) (*node, string) {
	if leader {
		if l := n.ns.leader(ctx); l != nil {
			return l, "leader"
		}
		return nil, ""
	}
	return n.ns.list[n.rng.IntN(len(n.ns.list))], "random"
}

// inject runs one fault for hold and heals it (even when ctx ends early).
// It returns false when ctx ended.
func (n *nemesis) inject(ctx context.Context, fault string, hold time.Duration) bool {
	var nd *node
	var how string
	switch fault {
	case "kill", "pause":
		nd, how = n.pick(ctx, fault == "pause" && n.rng.IntN(2) == 0)
	case "kill-leader", "partition-leader":
		nd, how = n.pick(ctx, true)
	case "member":
		nd, how = n.pick(ctx, n.rng.IntN(3) == 0)
	case "kill-all":
		n.event("start", fault, nil, fmt.Sprintf("all %d nodes, held %s", len(n.ns.list), hold.Round(time.Millisecond)))
		n.injected++
		for _, x := range n.ns.list {
			x.kill()
		}
		ok := sleepCtx(ctx, hold)
		for _, x := range n.ns.list {
			if err := x.start(n.ns.bin); err != nil {
				n.logf("nemesis: restart %s: %v", x.id, err)
			}
		}
		n.event("stop", fault, nil, "")
		return ok
	case "clock":
		offsets := n.drawOffsets()
		var desc []string
		for i, d := range offsets {
			if d != 0 {
				sign := "+"
				if d < 0 {
					sign, d = "-", -d
				}
				desc = append(desc, fmt.Sprintf("%s:%s%s", n.ns.list[i].id, sign, d))
			}
		}
		n.event("start", fault, nil, fmt.Sprintf("offsets %s, held %s", strings.Join(desc, " "), hold.Round(time.Millisecond)))
		n.injected++
		for i, d := range offsets {
			if err := n.ns.list[i].setClockOffset(d); err != nil {
				n.logf("nemesis: clock %s: %v", n.ns.list[i].id, err)
			}
		}
		ok := sleepCtx(ctx, hold)
		n.resetClocks()
		n.event("stop", fault, nil, "")
		return ok
	case "partition":
		cuts, desc, err := shape(n.shapes[n.rng.IntN(len(n.shapes))], len(n.ns.list), n.rng)
		if err != nil {
			n.logf("nemesis: %v; skipped", err)
			return sleepCtx(ctx, time.Second)
		}
		n.event("start", fault, nil, fmt.Sprintf("%s, held %s", desc, hold.Round(time.Millisecond)))
		n.injected++
		n.net.grudge(cuts)
		ok := sleepCtx(ctx, hold)
		n.net.healAll()
		n.event("stop", fault, nil, "")
		return ok
	}
	if nd == nil {
		n.logf("nemesis: no leader found for %s; skipped", fault)
		return sleepCtx(ctx, time.Second)
	}
	detail := fmt.Sprintf("%s node, held %s", how, hold.Round(time.Millisecond))
	n.event("start", fault, nd, detail)
	n.injected++
	switch fault {
	case "kill", "kill-leader":
		nd.kill()
	case "member":
		nd.stop() // SIGTERM: the node leaves the Raft configuration
	case "pause":
		nd.signal(syscall.SIGSTOP)
	case "partition-leader":
		n.net.isolate(nd.idx, len(n.ns.list))
	}
	ok := sleepCtx(ctx, hold)
	switch fault {
	case "kill", "kill-leader":
		if err := nd.start(n.ns.bin); err != nil {
			n.logf("nemesis: restart %s: %v", nd.id, err)
		}
	case "member":
		// The machine is replaced: empty data dir, a new node id (an id is
		// never reused once its data is gone), same addresses.
		old := nd.id
		if err := nd.replace(); err != nil {
			n.logf("nemesis: replace %s: %v", old, err)
		} else if err := nd.start(n.ns.bin); err != nil {
			n.logf("nemesis: start %s: %v", nd.id, err)
		}
		n.event("stop", fault, nd, "replaced "+old+" by "+nd.id)
		return ok
	case "pause":
		nd.signal(syscall.SIGCONT)
	case "partition-leader":
		n.net.healAll()
	}
	n.event("stop", fault, nd, "")
	return ok
}

// drawOffsets picks clock offsets for a clock fault: one to n-1 nodes get
// a bump of ±1.5^k ms (k in 6..31: about 11 ms to 5 min, Jepsen's bump),
// and one fault in four pushes one of them 16-30 min off, beyond the
// SigV4 window, so its requests must fail definitely.
func (n *nemesis) drawOffsets() []time.Duration {
	out := make([]time.Duration, len(n.ns.list))
	k := 1 + n.rng.IntN(max(1, len(out)-1))
	for _, i := range n.rng.Perm(len(out))[:k] {
		d := time.Duration(math.Pow(1.5, float64(6+n.rng.IntN(26))) * float64(time.Millisecond)).Round(time.Millisecond)
		if n.rng.IntN(2) == 0 {
			d = -d
		}
		out[i] = d
	}
	if n.rng.IntN(4) == 0 {
		i := n.rng.IntN(len(out))
		out[i] = time.Duration(16+n.rng.IntN(15)) * time.Minute
		if n.rng.IntN(2) == 0 {
			out[i] = -out[i]
		}
	}
	return out
}

func (n *nemesis) resetClocks() {
	for _, nd := range n.ns.list {
		if err := nd.setClockOffset(0); err != nil {
			n.logf("nemesis: clock reset %s: %v", nd.id, err)
		}
	}
}

// healAll undoes every fault: heal links, reset clocks, resume and
// restart every node.
func (n *nemesis) healAll() {
	n.net.healAll()
	n.resetClocks()
	for _, nd := range n.ns.list {
		nd.signal(syscall.SIGCONT)
		if !nd.isRunning() {
			nd.start(n.ns.bin)
		}
	}
}
