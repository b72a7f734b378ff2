package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/cofferhq/coffer/jepsen/check"
)

// Faults the nemesis can inject.
var faultKinds = []string{"kill", "kill-leader", "pause", "partition-leader", "partition"}

// nemesis injects one fault at a time: wait a healthy gap, inject, hold,
// heal. Every start and stop goes to nemesis.jsonl.
type nemesis struct {
	faults   []string
	ns       *nodes
	proxy    *netProxy
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
	case "partition":
		cuts, desc, err := shape(n.shapes[n.rng.IntN(len(n.shapes))], len(n.ns.list), n.rng)
		if err != nil {
			n.logf("nemesis: %v; skipped", err)
			return sleepCtx(ctx, time.Second)
		}
		n.event("start", fault, nil, fmt.Sprintf("%s, held %s", desc, hold.Round(time.Millisecond)))
		n.injected++
		n.proxy.grudge(cuts)
		ok := sleepCtx(ctx, hold)
		n.proxy.healAll()
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
	case "pause":
		nd.signal(syscall.SIGSTOP)
	case "partition-leader":
		n.proxy.isolate(nd.idx, len(n.ns.list))
	}
	ok := sleepCtx(ctx, hold)
	switch fault {
	case "kill", "kill-leader":
		if err := nd.start(n.ns.bin); err != nil {
			n.logf("nemesis: restart %s: %v", nd.id, err)
		}
	case "pause":
		nd.signal(syscall.SIGCONT)
	case "partition-leader":
		n.proxy.healAll()
	}
	n.event("stop", fault, nd, "")
	return ok
}

// healAll undoes every fault: heal links, resume and restart every node.
func (n *nemesis) healAll() {
	n.proxy.healAll()
	for _, nd := range n.ns.list {
		nd.signal(syscall.SIGCONT)
		if !nd.isRunning() {
			nd.start(n.ns.bin)
		}
	}
}
