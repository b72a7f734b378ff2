package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/jepsen/check"
)

// The region-failover scenario (docs/jepsen.md, research §7): two
// regions of real servers joined by the WAN pool on loopback; secrets
// created in A (the primary, us-east-1) with B (us-west-2) as replica
// region; writers put into A while readers poll B; every server of A is
// SIGKILLed, the harness promotes B and the writers move to it; A's
// servers come back on their data and must turn into B's replicas,
// keeping what B never received as conflicts. Checked by check.Failover*.

const replicaRegion = "us-west-2"

// Failover workload sizes. The puts per secret stay under the
// 100-version limit (fsm.MaxVersions: with more, a put is refused while
// every version is younger than a day).
const (
	failoverSecrets   = 5 // per minute of main phase; one replica reader per 5
	failoverWriters   = 4 // follow the promotion: A, then B
	failoverPutEvery  = 700 * time.Millisecond
	staleEvery        = time.Second // one writer that keeps writing to A,
	staleRushEvery    = 150 * time.Millisecond
	staleRush         = 6 * time.Second // every staleRushEvery this long after A's restart
	failoverReadEvery = 250 * time.Millisecond
	failoverMaxPuts   = 85 // puts (not definitely failed) per secret
	failoverDecision  = 2 * time.Second
)

type fregion struct {
	name    string
	ns      *nodes
	clients []*secretsmanager.Client
}

type failoverRun struct {
	rec      *recorder
	run      string
	timeout  time.Duration
	creds    rootCreds
	regions  [2]*fregion // A, B
	secrets  []string
	target   atomic.Int32 // region the following writers use: 0 A, 1 B
	mu       sync.Mutex
	puts     map[string]int // puts per secret not definitely failed
	next     int
	info     check.FailoverRun
	infoMu   sync.Mutex
	rs       *check.Writer
	killed   atomic.Bool
	restart  atomic.Int64 // when A's servers were started again (rec.now)
	adminCli *http.Client
}

func (fr *failoverRun) marker() string { return "jepsen/" + fr.run + "/" }

func (fr *failoverRun) token(id int64) string { return fmt.Sprintf("%s-%020d", fr.run, id) }

// apiMessage is an API error's message, or the end of a transport
// error (classify keeps only its start).
func apiMessage(err error) string {
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		m := ae.ErrorMessage()
		if len(m) > 200 {
			m = m[:200]
		}
		return m
	}
	m := err.Error()
	return m[max(0, len(m)-300):]
}

// put is PutSecretValue (or, with create, the CreateSecret with B as
// replica region) of a unique value with a unique token, through node i
// of region r.
func (fr *failoverRun) put(r, i, proc int, secret string, create bool) check.Op {
	reg := fr.regions[r]
	id := fr.rec.ids.Add(1)
	op := check.Op{ID: id, Process: proc, Node: reg.ns.list[i].id, Region: reg.name, Kind: check.KindPut, Secret: secret,
		Token: fr.token(id), Value: fmt.Sprintf("%s%s/%d/%x", fr.marker(), secret, id, rand.Uint64())}
	ctx, cancel := context.WithTimeout(context.Background(), fr.timeout)
	defer cancel()
	op.Call = fr.rec.now()
	var err error
	if create {
		var out *secretsmanager.CreateSecretOutput
		out, err = reg.clients[i].CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(secret),
			SecretString: aws.String(op.Value), ClientRequestToken: aws.String(op.Token),
			AddReplicaRegions: []smtypes.ReplicaRegionType{{Region: aws.String(fr.regions[1].name)}}})
		if err == nil {
			op.VersionID, op.Index = aws.ToString(out.VersionId), indexOf(out.ResultMetadata)
		}
	} else {
		var out *secretsmanager.PutSecretValueOutput
		out, err = reg.clients[i].PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(secret),
			SecretString: aws.String(op.Value), ClientRequestToken: aws.String(op.Token)})
		if err == nil {
			op.VersionID, op.Index = aws.ToString(out.VersionId), indexOf(out.ResultMetadata)
			op.Stages = nonNil(out.VersionStages)
		}
	}
	op.Ret = fr.rec.now()
	op.Status, op.Err, op.Outcome = classify(err, true)
	op.Message = apiMessage(err)
	fr.rec.w.Write(op)
	return op
}

// read is a GetSecretValue of AWSCURRENT, a DescribeSecret or a
// ListSecretVersionIds (IncludeDeprecated) through node i of region r.
func (fr *failoverRun) read(r, i, proc int, kind, secret string, final bool) check.Op {
	reg := fr.regions[r]
	op := check.Op{ID: fr.rec.ids.Add(1), Process: proc, Node: reg.ns.list[i].id, Region: reg.name, Kind: kind, Secret: secret, Final: final}
	ctx, cancel := context.WithTimeout(context.Background(), fr.timeout)
	defer cancel()
	c := reg.clients[i]
	op.Call = fr.rec.now()
	var err error
	switch kind {
	case check.KindGet:
		var out *secretsmanager.GetSecretValueOutput
		if out, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secret)}); err == nil {
			op.VersionID, op.Read, op.Index = aws.ToString(out.VersionId), aws.ToString(out.SecretString), indexOf(out.ResultMetadata)
			op.Stages = nonNil(out.VersionStages)
		}
	case check.KindDescribe:
		var out *secretsmanager.DescribeSecretOutput
		if out, err = c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(secret)}); err == nil {
			op.Primary, op.Versions, op.Index = aws.ToString(out.PrimaryRegion), out.VersionIdsToStages, indexOf(out.ResultMetadata)
		}
	case check.KindListVersions:
		in := &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(secret), IncludeDeprecated: aws.Bool(true), MaxResults: aws.Int32(100)}
		op.Versions = map[string][]string{}
		for {
			var out *secretsmanager.ListSecretVersionIdsOutput
			if out, err = c.ListSecretVersionIds(ctx, in); err != nil {
				break
			}
			op.Index = indexOf(out.ResultMetadata)
			for _, v := range out.Versions {
				op.Versions[aws.ToString(v.VersionId)] = nonNil(v.VersionStages)
			}
			if out.NextToken == nil {
				break
			}
			in.NextToken = out.NextToken
		}
		if err != nil {
			op.Versions = nil
		}
	}
	op.Ret = fr.rec.now()
	op.Status, op.Err, op.Outcome = classify(err, false)
	op.Message = apiMessage(err)
	fr.rec.w.Write(op)
	return op
}

// pickSecret returns the next secret with room for another version, or
// "" when every secret has had failoverMaxPuts.
func (fr *failoverRun) pickSecret() string {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	for range fr.secrets {
		s := fr.secrets[fr.next%len(fr.secrets)]
		fr.next++
		if fr.puts[s] < failoverMaxPuts {
			fr.puts[s]++ // given back below if the put definitely failed
			return s
		}
	}
	return ""
}

func (fr *failoverRun) putDone(op check.Op) {
	if op.Status == check.StatusFail {
		fr.mu.Lock()
		fr.puts[op.Secret]--
		fr.mu.Unlock()
	}
}

// writer puts into the region fr.target names (stale: always A), on its
// nodes in turn, one put per every.
func (fr *failoverRun) writer(ctx context.Context, k int, stale bool, every time.Duration) {
	proc := fr.rec.newProcess()
	for n := k; ctx.Err() == nil; n++ {
		start := time.Now()
		r := int(fr.target.Load())
		if stale {
			r = 0
		}
		if s := fr.pickSecret(); s != "" {
			op := fr.put(r, n%len(fr.regions[r].clients), proc, s, false)
			fr.putDone(op)
			if op.Status == check.StatusUnknown {
				proc = fr.rec.newProcess()
			}
		}
		d := every
		if t := fr.restart.Load(); stale && t > 0 && time.Duration(fr.rec.now()-t) < staleRush {
			// Right after A comes back, before it learns of the
			// promotion, is when it may still accept writes.
			d = staleRushEvery
		}
		pace(ctx, start, d)
	}
}

// replicaReader polls its secrets in B in turn: AWSCURRENT and the
// version list every round, DescribeSecret every fourth, on B's nodes in
// turn.
func (fr *failoverRun) replicaReader(ctx context.Context, k int, secrets []string) {
	proc := fr.rec.newProcess()
	for n := k; ctx.Err() == nil; n++ {
		start := time.Now()
		secret := secrets[n%len(secrets)]
		i := n % len(fr.regions[1].clients)
		fr.read(1, i, proc, check.KindGet, secret, false)
		fr.read(1, i, proc, check.KindListVersions, secret, false)
		if n%4 == 0 {
			fr.read(1, i, proc, check.KindDescribe, secret, false)
		}
		pace(ctx, start, failoverReadEvery)
	}
}

// primaryReader polls DescribeSecret of every secret in A in turn (the
// fencing check's evidence that A knows it was superseded).
func (fr *failoverRun) primaryReader(ctx context.Context) {
	proc := fr.rec.newProcess()
	for n := 0; ctx.Err() == nil; n++ {
		start := time.Now()
		fr.read(0, n%len(fr.regions[0].clients), proc, check.KindDescribe, fr.secrets[n%len(fr.secrets)], false)
		pace(ctx, start, failoverReadEvery)
	}
}

// admin makes a root-signed admin call to nd, scoped to its region.
func (fr *failoverRun) admin(ctx context.Context, nd *node, method, path string, body, out any) (int, error) {
	var payload []byte
	if body != nil {
		payload, _ = json.Marshal(body)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*fr.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+nd.api+path, bytes.NewReader(payload))
	if err != nil {
		return 0, err
	}
	acl.Sign(req, payload, fr.creds.AccessKeyID, fr.creds.SecretAccessKey, nd.region, "coffer", time.Now())
	resp, err := fr.adminCli.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

// statusSampler polls GET /v1/replication/status of A (until it is
// killed) and of B, every 500 ms, into replstatus.jsonl.
func (fr *failoverRun) statusSampler(ctx context.Context) {
	for n := 0; ctx.Err() == nil; n++ {
		for r, reg := range fr.regions {
			if r == 0 && fr.killed.Load() {
				continue
			}
			nd := reg.ns.list[n%len(reg.ns.list)]
			var out struct {
				Replicas []check.ReplicaLag `json:"replicas"`
			}
			_, err := fr.admin(ctx, nd, http.MethodGet, "/v1/replication/status", nil, &out)
			s := check.ReplSample{Time: fr.rec.now(), Node: nd.id, Region: reg.name, Replicas: out.Replicas}
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.Err = err.Error()
			}
			fr.rs.Write(s)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// regionsKnown: every region's servers see both regions in the WAN
// pool, each with all its servers serving and one key fingerprint.
func (fr *failoverRun) regionsKnown(ctx context.Context) bool {
	for _, reg := range fr.regions {
		for _, nd := range reg.ns.list {
			var out struct {
				Regions []struct {
					Name        string `json:"region"`
					Serving     int    `json:"serving"`
					Fingerprint string `json:"key_fingerprint"`
					Mismatch    bool   `json:"key_mismatch"`
				} `json:"regions"`
			}
			if _, err := fr.admin(ctx, nd, http.MethodGet, "/v1/regions", nil, &out); err != nil {
				return false
			}
			seen := 0
			for _, x := range out.Regions {
				for _, want := range fr.regions {
					if x.Name == want.name && x.Serving == len(want.ns.list) && x.Fingerprint != "" && !x.Mismatch {
						seen++
					}
				}
			}
			if seen != len(fr.regions) {
				return false
			}
		}
	}
	return true
}

// converged: every node of both regions describes every secret with
// PrimaryRegion B and one AWSCURRENT.
func (fr *failoverRun) converged() (bool, string) {
	proc := fr.rec.newProcess()
	for _, s := range fr.secrets {
		cur := ""
		for r, reg := range fr.regions {
			for i := range reg.clients {
				op := fr.read(r, i, proc, check.KindDescribe, s, true)
				if op.Status != check.StatusOK || op.Err != "" {
					return false, fmt.Sprintf("%s on %s: %s %s", s, op.Node, op.Err, op.Message)
				}
				if op.Primary != fr.regions[1].name {
					return false, fmt.Sprintf("%s on %s: primary %q", s, op.Node, op.Primary)
				}
				c := ""
				for v, st := range op.Versions {
					if contains(st, check.StageCurrent) {
						c = v
					}
				}
				if cur == "" {
					cur = c
				} else if c != cur {
					return false, fmt.Sprintf("%s on %s: AWSCURRENT %s, elsewhere %s", s, op.Node, c, cur)
				}
			}
		}
	}
	return true, ""
}

func runFailover(ctx context.Context, o options, sc scenario, bin string, seed uint64) (*report, error) {
	limit := sc.timeLimit * time.Duration(o.longFactor)
	if o.timeLimit > 0 {
		limit = o.timeLimit
	}
	nA := o.nodes
	if sc.nodes > 0 && !o.nodesSet {
		nA = sc.nodes
	}
	nB := o.replicaNodes
	start := time.Now().UTC()
	dir := filepath.Join(o.results, start.Format("20060102T150405Z")+"-"+sc.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) {
		fmt.Printf("[%s %6.1fs] %s\n", sc.name, time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	logf("seed=%d regions %s (%d nodes) -> %s (%d nodes) time-limit=%s results=%s", seed, region, nA, replicaRegion, nB, limit, dir)
	rng := rand.New(rand.NewPCG(seed, 0x6a657073656e))
	// Enough secrets that none reaches failoverMaxPuts at the writers'
	// pace (about 70 puts per secret per minute).
	nSecrets := failoverSecrets * int(max(1, (limit+59*time.Second)/time.Minute))
	info := runInfo{Scenario: sc.name, Seed: seed, Nodes: nA, ReplicaNodes: nB, Regions: []string{region, replicaRegion}, Net: "loopback",
		Faults: sc.faults, TimeLimit: limit.String(), Rate: int(float64(failoverWriters)/failoverPutEvery.Seconds() + 1/staleEvery.Seconds()),
		Workers: failoverWriters + 1, Keys: nSecrets, Started: start.Format(time.RFC3339), Bin: bin, Args: os.Args[1:]}
	if b, err := json.MarshalIndent(info, "", "  "); err == nil {
		os.WriteFile(filepath.Join(dir, "run.json"), b, 0o644)
	}

	// Both regions bootstrap with the same root key pair (each has its
	// own root key), one CA and one gossip key; the same account id.
	creds := rootCreds{AccessKeyID: fmt.Sprintf("AKIAJEPSEN%010d", seed%1e10), SecretAccessKey: fmt.Sprintf("jepsen/secret/%016x", rng.Uint64())}
	extra := append(append([]string{}, sc.serverArgs...), o.serverArgs...)
	pki, err := setupPKI(bin, dir, creds)
	if err != nil {
		return nil, err
	}
	var all []*node
	fr := &failoverRun{timeout: o.requestTimeout, creds: creds, puts: map[string]int{},
		adminCli: &http.Client{Transport: apiTransport}}
	for r, spec := range []regionSpec{
		{name: region, prefix: "a", ipBase: 11, n: nA, proxied: false},
		{name: replicaRegion, prefix: "b", ipBase: 21, n: nB, proxied: false},
	} {
		spec.keyFile = filepath.Join(dir, "root-"+spec.name+".key")
		if err := genRootKey(bin, spec.keyFile); err != nil {
			return nil, err
		}
		ns, err := setupRegion(bin, dir, spec, pki, creds, extra, false, nil)
		if err != nil {
			return nil, err
		}
		fr.regions[r] = &fregion{name: spec.name, ns: ns}
		all = append(all, ns.list...)
	}
	for _, nd := range all {
		if nd.wan, err = freeAddr("127.0.0.1", true); err != nil {
			return nil, err
		}
	}
	// Every server joins the WAN pool through every other one (a server
	// of A that comes back finds B's servers, and the reverse).
	for _, nd := range all {
		var join []string
		for _, x := range all {
			if x != nd {
				join = append(join, x.wan)
			}
		}
		nd.args = append(nd.args, "--wan-gossip-addr", nd.wan, "--wan-join", joinList(join))
	}
	defer func() {
		for _, nd := range all {
			nd.stop()
		}
	}()
	for _, nd := range all {
		if err := nd.start(bin); err != nil {
			return nil, err
		}
	}
	for _, reg := range fr.regions {
		if reg.ns.waitLeader(ctx, 60*time.Second) == nil {
			return nil, fmt.Errorf("%s: no leader within 60s of start (see nodes/*/coffer.log)", reg.name)
		}
		if _, err := reg.ns.waitConverged(ctx, 60*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w", reg.name, err)
		}
		for _, nd := range reg.ns.list {
			reg.clients = append(reg.clients, newRegionClient("https://"+nd.api, reg.name, creds))
		}
	}
	logf("regions up: %s %d nodes, %s %d nodes", region, nA, replicaRegion, nB)
	deadline := time.Now().Add(60 * time.Second)
	for !fr.regionsKnown(ctx) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, errors.New("the regions did not see each other (GET /v1/regions) within 60s")
		}
		time.Sleep(500 * time.Millisecond)
	}
	logf("WAN pool: each region sees both, with their key fingerprints")

	files, closeFiles, err := createFiles(dir, "history.jsonl", "final.jsonl", "nemesis.jsonl", "replstatus.jsonl")
	if err != nil {
		return nil, err
	}
	defer closeFiles()
	hist, final, nem := check.NewWriter(files["history.jsonl"]), check.NewWriter(files["final.jsonl"]), check.NewWriter(files["nemesis.jsonl"])
	fr.rs = check.NewWriter(files["replstatus.jsonl"])
	fr.rec = &recorder{base: start, w: hist}
	run := fmt.Sprintf("%012x", seed)
	fr.run = run[:12]
	fr.info = check.FailoverRun{Primary: region, Replica: replicaRegion}
	for r, reg := range fr.regions {
		for _, nd := range reg.ns.list {
			if r == 0 {
				fr.info.PrimaryNodes = append(fr.info.PrimaryNodes, nd.id)
			} else {
				fr.info.ReplicaNodes = append(fr.info.ReplicaNodes, nd.id)
			}
		}
	}

	// Setup: the secrets, created in A with B as replica region, each
	// recorded as its first put; then wait until B holds every replica.
	for k := range nSecrets {
		name := fmt.Sprintf("failover-%s-%d", fr.run, k)
		for attempt := 0; ; attempt++ {
			op := fr.put(0, k%nA, fr.rec.newProcess(), name, true)
			if op.Status == check.StatusOK {
				break
			}
			if attempt > 20 || op.Status == check.StatusUnknown {
				return nil, fmt.Errorf("setup: create %s: %s %s %s", name, op.Status, op.Err, op.Message)
			}
			time.Sleep(200 * time.Millisecond)
		}
		fr.secrets = append(fr.secrets, name)
		fr.puts[name] = 1
	}
	fr.info.Secrets = fr.secrets
	deadline = time.Now().Add(30 * time.Second)
	for _, s := range fr.secrets {
		for {
			op := fr.read(1, 0, fr.rec.newProcess(), check.KindDescribe, s, false)
			if op.Status == check.StatusOK && op.Err == "" && op.Primary == region {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("setup: %s not replicated to %s within 30s: %s %s", s, replicaRegion, op.Err, op.Message)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	logf("setup: %d secrets created in %s, replicated to %s", len(fr.secrets), region, replicaRegion)

	// Main phase: writers into A, readers of B (and of A), the status
	// sampler, and the failover: kill A, promote B, restart A.
	killAt := time.Duration(float64(limit) * (0.30 + 0.10*rng.Float64()))
	restartAfter := time.Duration(float64(limit) * (0.18 + 0.04*rng.Float64()))
	mainCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	mainStart := time.Now()
	var wg sync.WaitGroup
	gof := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	for k := range failoverWriters {
		gof(func() { fr.writer(mainCtx, k, false, failoverPutEvery) })
	}
	gof(func() { fr.writer(mainCtx, 0, true, staleEvery) })
	for k := range failoverSecrets {
		var mine []string
		for j := k; j < len(fr.secrets); j += failoverSecrets {
			mine = append(mine, fr.secrets[j])
		}
		gof(func() { fr.replicaReader(mainCtx, k, mine) })
	}
	gof(func() { fr.primaryReader(mainCtx) })
	gof(func() { fr.statusSampler(mainCtx) })
	sleepUntil := func(t time.Time) bool {
		select {
		case <-mainCtx.Done():
			return false
		case <-time.After(time.Until(t)):
			return true
		}
	}
	var nemErr error
	if sleepUntil(mainStart.Add(killAt)) {
		// Sharpen the fault: a burst of puts into A, one per secret,
		// and the kill as soon as the first is acknowledged (1 s at
		// most), so that some acknowledged writes have likely not
		// reached B yet (the RPO) and some are in flight (unknown).
		burst := make(chan check.Op, len(fr.secrets))
		for k := range fr.secrets {
			go func() {
				op := check.Op{}
				if s := fr.pickSecret(); s != "" {
					op = fr.put(0, k%nA, fr.rec.newProcess(), s, false)
					fr.putDone(op)
				}
				burst <- op
			}()
		}
		timer := time.NewTimer(time.Second)
	wait:
		for range fr.secrets {
			select {
			case op := <-burst:
				if op.Status == check.StatusOK {
					break wait
				}
			case <-timer.C:
				break wait
			}
		}
		timer.Stop()
		fr.info.Kill = fr.rec.now()
		nem.Write(check.Event{Time: fr.info.Kill, Phase: "start", Fault: "kill-region", Detail: region + ": " + strings.Join(fr.info.PrimaryNodes, ",")})
		fr.killed.Store(true)
		for _, nd := range fr.regions[0].ns.list {
			nd.signal(syscall.SIGKILL) // every server at once
		}
		for _, nd := range fr.regions[0].ns.list {
			nd.kill() // waits for the exit
		}
		fr.info.Killed = fr.rec.now()
		logf("nemesis: SIGKILL every server of %s", region)
	}
	if sleepUntil(mainStart.Add(killAt + failoverDecision)) {
		// The writers move to B as the promotion is called: their first
		// puts may still find B's secrets replicas (refused).
		fr.target.Store(1)
		promoteDeadline := time.Now().Add(30 * time.Second)
		for attempt := 0; time.Now().Before(promoteDeadline) && mainCtx.Err() == nil; attempt++ {
			nd := fr.regions[1].ns.list[attempt%nB]
			fr.info.PromoteAttempts++
			call := fr.rec.now()
			nem.Write(check.Event{Time: call, Phase: "start", Fault: "promote", Node: nd.id, Detail: replicaRegion + " from " + region})
			var out struct {
				Secrets int    `json:"secrets"`
				Index   uint64 `json:"index"`
			}
			code, err := fr.admin(context.Background(), nd, http.MethodPost, "/v1/region/promote", map[string]string{"from": region}, &out)
			ret := fr.rec.now()
			detail := fmt.Sprintf("%d secrets at index %d", out.Secrets, out.Index)
			if err != nil {
				detail = err.Error()
			}
			nem.Write(check.Event{Time: ret, Phase: "stop", Fault: "promote", Node: nd.id, Detail: detail})
			fr.info.PromoteCall, fr.info.PromoteRet = call, ret
			if err == nil {
				fr.info.Promoted, fr.info.PromoteSecrets, fr.info.PromoteIndex, fr.info.PromoteErr = true, out.Secrets, out.Index, ""
				logf("promoted %s: %d secrets at index %d in %s", replicaRegion, out.Secrets, out.Index, time.Duration(ret-call).Round(time.Millisecond))
				break
			}
			fr.info.PromoteErr = err.Error()
			if code == http.StatusBadRequest && strings.Contains(err.Error(), "nothing to promote") && attempt > 0 {
				// An earlier attempt whose answer was lost took effect.
				fr.info.Promoted = true
				break
			}
			logf("promote %s on %s: %v", replicaRegion, nd.id, err)
			time.Sleep(500 * time.Millisecond)
		}
		if fr.info.Promoted {
			// The RTO probe: the harness's own put into B right after
			// the promotion answered (the writers are paced), then B's
			// versions as it was promoted (A is down: nothing more can
			// arrive from it).
			proc := fr.rec.newProcess()
			for n := 0; n < 100 && mainCtx.Err() == nil; n++ {
				s := fr.pickSecret()
				if s == "" {
					break
				}
				op := fr.put(1, n%nB, proc, s, false)
				fr.putDone(op)
				if op.Status == check.StatusOK {
					break
				} else if op.Status == check.StatusUnknown {
					proc = fr.rec.newProcess()
				}
				time.Sleep(50 * time.Millisecond)
			}
			for k, s := range fr.secrets {
				for attempt := 0; attempt < 5; attempt++ {
					if op := fr.read(1, (k+attempt)%nB, proc, check.KindListVersions, s, false); op.Status == check.StatusOK && op.Err == "" {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		} else {
			nemErr = fmt.Errorf("promotion of %s failed: %s", replicaRegion, fr.info.PromoteErr)
		}
	}
	if sleepUntil(mainStart.Add(killAt + restartAfter)) {
		fr.info.Restart = fr.rec.now()
		fr.restart.Store(fr.info.Restart)
		for _, nd := range fr.regions[0].ns.list {
			if err := nd.start(bin); err != nil {
				logf("restart %s: %v", nd.id, err)
			}
		}
		fr.killed.Store(false)
		nem.Write(check.Event{Time: fr.info.Restart, Phase: "stop", Fault: "kill-region", Detail: region + " restarted"})
		logf("nemesis: %s's servers restarted on their data", region)
	}
	<-mainCtx.Done()
	wg.Wait()
	fr.info.MainEnd = fr.rec.now()
	if fr.info.Kill == 0 {
		return nil, errors.New("the main phase ended before the fault: --time-limit too short")
	}
	if nemErr != nil {
		logf("%v", nemErr)
	}
	for _, nd := range fr.regions[0].ns.list {
		nd.start(bin) // in case the main phase ended before the restart
	}
	logf("main phase over; waiting for the regions to converge")

	// Convergence: A's secrets are B's replicas with B's AWSCURRENT.
	liveness := check.Result{Name: "liveness: regions converge", Verdict: check.Valid}
	convStart := time.Now()
	for {
		ok, why := fr.converged()
		if ok {
			fr.info.Converged, fr.info.ConvergedAt = true, fr.rec.now()
			liveness.Detail = fmt.Sprintf("every node of both regions shows %s as every secret's primary with one AWSCURRENT %.1fs after the main phase",
				replicaRegion, time.Since(convStart).Seconds())
			break
		}
		fr.info.ConvergeDetail = why
		if time.Since(convStart) > 60*time.Second || ctx.Err() != nil {
			liveness.Verdict, liveness.Detail = check.Invalid, "not converged within 60s of the main phase: "+why
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	logf("%s", liveness.Detail)

	// Final reads: every node's view of every secret (in the history),
	// then every put that did not definitely fail by VersionId in both
	// regions (final.jsonl), then both regions' conflicts.
	proc := fr.rec.newProcess()
	for _, s := range fr.secrets {
		for r, reg := range fr.regions {
			for i := range reg.clients {
				for _, kind := range []string{check.KindGet, check.KindDescribe, check.KindListVersions} {
					for attempt := 0; attempt < 5; attempt++ {
						if op := fr.read(r, i, proc, kind, s, true); op.Status == check.StatusOK {
							break
						}
						time.Sleep(200 * time.Millisecond)
					}
				}
			}
		}
	}
	hist.Flush()
	ops, err := check.ReadJSONL[check.Op](filepath.Join(dir, "history.jsonl"))
	if err != nil {
		return nil, err
	}
	fr.finalVersions(ops, final)
	for r, reg := range fr.regions {
		var out struct {
			Conflicts []check.Conflict `json:"conflicts"`
		}
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			if _, err = fr.admin(ctx, reg.ns.list[attempt%len(reg.ns.list)], http.MethodGet, "/v1/region/conflicts", nil, &out); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if r == 0 {
			fr.info.Conflicts, fr.info.ConflictsErr = nonNilConflicts(out.Conflicts), msg
		} else {
			fr.info.ReplicaConflicts, fr.info.ReplicaConflictsErr = nonNilConflicts(out.Conflicts), msg
		}
	}
	hist.Flush()
	final.Flush()
	nem.Flush()
	fr.rs.Flush()
	if b, err := json.MarshalIndent(fr.info, "", "  "); err == nil {
		if err := os.WriteFile(filepath.Join(dir, "failover.json"), b, 0o644); err != nil {
			return nil, err
		}
	}
	logf("final reads done; %s lists %d conflicts", region, len(fr.info.Conflicts))

	// Each region's nodes: one state digest at one index.
	sf, err := os.Create(filepath.Join(dir, "status.jsonl"))
	if err != nil {
		return nil, err
	}
	defer sf.Close()
	sw := check.NewWriter(sf)
	for _, reg := range fr.regions {
		conv, polls := reg.ns.pollDigests(ctx, fr.rec, sw, 30*time.Second)
		logf("%s state digests: converged=%v after %d polls", reg.name, conv, polls)
	}
	sw.Flush()
	for _, nd := range all {
		nd.stop()
	}
	if err := dumpRaftLogs(dir, all); err != nil {
		logf("raft log dump: %v", err)
	}
	var roots []string
	for _, nd := range all {
		roots = append(roots, nd.dataDir, nd.logPath)
	}
	scan := check.ScanForMarker(fr.marker(), roots...)
	if b, err := json.MarshalIndent(scan, "", "  "); err == nil {
		os.WriteFile(filepath.Join(dir, "plaintext.json"), b, 0o644)
	}
	logf("plaintext scan: %d files, %d hits", scan.Files, len(scan.Hits))

	rep, err := checkDir(dir, o.checkTimeout, []check.Result{liveness})
	if err != nil {
		return nil, err
	}
	fmt.Print(rep.text)
	if rep.verdict == check.Valid && !o.keepData {
		for _, nd := range all {
			os.RemoveAll(nd.dataDir)
		}
	}
	return rep, nil
}

func nonNilConflicts(cs []check.Conflict) []check.Conflict {
	if cs == nil {
		return []check.Conflict{}
	}
	return cs
}

// finalVersions reads every put that did not definitely fail by
// VersionId in both regions (nodes in turn, retried on errors).
func (fr *failoverRun) finalVersions(ops []check.Op, out *check.Writer) {
	type job struct{ secret, version string }
	jobs := make(chan job)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := g
			for j := range jobs {
				for r, reg := range fr.regions {
					var res check.FinalRead
					for attempt := 0; attempt < 5; attempt++ {
						n++
						i := n % len(reg.clients)
						res = fr.finalVersion(r, i, j.secret, j.version)
						if res.Err == "" {
							break
						}
						time.Sleep(200 * time.Millisecond)
					}
					out.Write(res)
				}
			}
		}()
	}
	asked := map[[2]string]bool{}
	for _, o := range ops {
		if o.Kind != check.KindPut || o.Status == check.StatusFail || asked[[2]string{o.Secret, o.Token}] {
			continue
		}
		asked[[2]string{o.Secret, o.Token}] = true
		jobs <- job{o.Secret, o.Token}
	}
	close(jobs)
	wg.Wait()
}

func (fr *failoverRun) finalVersion(r, i int, secret, version string) check.FinalRead {
	reg := fr.regions[r]
	res := check.FinalRead{Kind: "version", Node: reg.ns.list[i].id, Region: reg.name, Secret: secret, VersionID: version}
	ctx, cancel := context.WithTimeout(context.Background(), fr.timeout)
	defer cancel()
	out, err := reg.clients[i].GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secret), VersionId: aws.String(version)})
	var ae smithy.APIError
	switch {
	case err == nil:
		res.Found, res.Value = true, aws.ToString(out.SecretString)
		res.Stages, res.Index = nonNil(out.VersionStages), indexOf(out.ResultMetadata)
		if out.CreatedDate != nil {
			res.Created = out.CreatedDate.UnixMilli()
		}
		if got := aws.ToString(out.VersionId); got != version {
			res.Value = "version id mismatch: " + got
		}
	case errors.As(err, &ae) && ae.ErrorCode() == "ResourceNotFoundException":
	default:
		res.Err = err.Error()
	}
	return res
}
