package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/jepsen/check"
)

// clusterStatus asks one node for GET /v1/cluster/status, signed as the
// region's root identity (SigV4, service "coffer").
func (nd *node) clusterStatus(ctx context.Context, creds rootCreds) (st check.NodeStatus) {
	st.Node = nd.id
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+nd.api+"/v1/cluster/status", nil)
	if err != nil {
		st.Err = err.Error()
		return st
	}
	acl.Sign(req, nil, creds.AccessKeyID, creds.SecretAccessKey, nd.region, "coffer", time.Now())
	resp, err := healthClient.Do(req)
	if err != nil {
		st.Err = err.Error()
		return st
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		st.Err = fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, b)
		return st
	}
	var body struct {
		State            string `json:"state"`
		Term             uint64 `json:"term"`
		AppliedIndex     uint64 `json:"applied_index"`
		StateDigest      string `json:"state_digest"`
		StateDigestIndex uint64 `json:"state_digest_index"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		st.Err = "decode: " + err.Error()
		return st
	}
	st.State, st.Term, st.AppliedIndex = body.State, body.Term, body.AppliedIndex
	st.StateDigest, st.StateDigestIndex = body.StateDigest, body.StateDigestIndex
	return st
}

// pollDigests polls every node's status every 250 ms, recording each
// sample, until one poll shows every node at one state-digest index with
// one digest, or timeout. It returns whether they converged and the
// number of polls.
func (ns *nodes) pollDigests(ctx context.Context, rec *recorder, out *check.Writer, timeout time.Duration) (bool, int) {
	deadline := time.Now().Add(timeout)
	for poll := 0; ; poll++ {
		var samples []check.NodeStatus
		for _, nd := range ns.list {
			s := nd.clusterStatus(ctx, ns.creds)
			s.Poll, s.Time = poll, rec.now()
			out.Write(s)
			samples = append(samples, s)
		}
		if check.PollConverged(samples) {
			return true, poll + 1
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false, poll + 1
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// sample polls every node's /v1/health every 100 ms until ctx ends and
// writes each answer (or its failure) to w: the data behind the
// time-to-elect figures (check.TimeToElect). One goroutine per node, so a
// paused node's timeouts do not slow the others' samples.
func (ns *nodes) sample(ctx context.Context, rec *recorder, w *check.Writer) {
	var wg sync.WaitGroup
	for _, nd := range ns.list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				s := check.Sample{Node: nd.name()}
				h, err := nd.health(ctx)
				s.Time = rec.now()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					s.Err = err.Error()
				} else {
					s.State, s.Leader, s.Term = h.State, h.LeaderID, h.Term
				}
				w.Write(s)
			}
		}()
	}
	wg.Wait()
}
