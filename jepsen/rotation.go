package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/jepsen/check"
	"github.com/cofferhq/coffer/rotation"
)

// The rotation scenario: RotateSecret while leaders are killed. A webhook
// rotator served by the harness itself (the hook) acts as an AWS rotation
// Lambda through the AWS SDK against the region; the checks are in
// jepsen/check/rotation.go.

const (
	rotSecrets        = 3                      // secrets rotated per started minute of main phase
	rotWorkersPer     = 2                      // RotateSecret workers per secret
	rotEvery          = 250 * time.Millisecond // a worker's pace
	rotReaders        = 3                      // DescribeSecret + GetSecretValue readers, one per node
	rotReadEvery      = 100 * time.Millisecond
	rotMaxPerSecret   = 80 // RotateSecrets not definitely refused per secret (each makes a version; 100 at most)
	rotHookDeadline   = 8 * time.Second
	rotSettleTimeout  = 90 * time.Second
	rotRotatorName    = "jepsen-hook"
	rotSigningSecret  = "jepsen/hook-key"
	rotHookTimeoutCfg = "10s"
)

// rotHookWork: how long the hook works on a step before it calls the API.
var rotHookWork = [2]time.Duration{100 * time.Millisecond, 500 * time.Millisecond}

type rotRun struct {
	rec     *recorder
	run     string
	creds   rootCreds
	ns      *nodes
	clients []*secretsmanager.Client // one attempt per call: the workers'
	hookCli []*secretsmanager.Client // retries on: the hook's, as a Lambda's
	nodeIDs []string
	timeout time.Duration
	raw     *http.Client
	secrets []check.RotSecret
	hookKey []byte
	hookW   *check.Writer
	next    atomic.Int64

	mu      sync.Mutex
	started map[string]int // RotateSecrets not definitely refused, per secret
}

func (rr *rotRun) token(id int64) string { return fmt.Sprintf("%s-%020d", rr.run, id) }

// marker: every rotated value is "rot-" + a token, and every token starts
// with the run id.
func (rr *rotRun) marker() string { return "rot-" + rr.run + "-" }

// hookClient is an SDK client with the standard retryer (3 attempts, no
// retry quota, at most 200 ms between them: the hook's own loop moves on
// to the next node, which is what gets past a node that is down) and a
// 2 s timeout per attempt.
func hookClient(endpoint string, creds rootCreds) *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, ""),
		HTTPClient: awshttp.NewBuildableClient().WithTimeout(2 * time.Second).WithTransportOptions(func(t *http.Transport) {
			t.TLSClientConfig = apiTransport.TLSClientConfig
		}),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.MaxBackoff = 200 * time.Millisecond
			o.RateLimiter = ratelimit.None
		}),
	})
}

// rotate is RotateSecret of secret with the hook's rotator and a fresh
// token through node i. "Previous rotation request is still in progress."
// (InvalidRequestException) is a definite refusal, as every 4xx answer
// of the request's own checks.
func (rr *rotRun) rotate(ctx context.Context, i, proc int, secret string) check.Op {
	id := rr.rec.ids.Add(1)
	op := check.Op{ID: id, Process: proc, Node: rr.nodeIDs[i], Kind: check.KindRotate, Secret: secret, Token: rr.token(id)}
	ctx, cancel := context.WithTimeout(ctx, rr.timeout)
	defer cancel()
	op.Call = rr.rec.now()
	out, err := rr.clients[i].RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(secret),
		ClientRequestToken: aws.String(op.Token), RotationLambdaARN: aws.String(rotRotatorName)})
	op.Ret = rr.rec.now()
	op.Status, op.Err, op.Outcome = classify(err, true)
	op.Message = apiMessage(err)
	switch {
	case err == nil:
		op.VersionID, op.Index = aws.ToString(out.VersionId), indexOf(out.ResultMetadata)
	case op.Err == "InvalidRequestException" || op.Err == "InvalidParameterException" || op.Err == "ResourceNotFoundException":
		op.Status = check.StatusFail
	}
	rr.rec.w.Write(op)
	return op
}

// get is GetSecretValue of AWSCURRENT through node i.
func (rr *rotRun) get(ctx context.Context, i, proc int, secret string, final bool) check.Op {
	op := check.Op{ID: rr.rec.ids.Add(1), Process: proc, Node: rr.nodeIDs[i], Kind: check.KindGet, Secret: secret, Final: final}
	ctx, cancel := context.WithTimeout(ctx, rr.timeout)
	defer cancel()
	op.Call = rr.rec.now()
	out, err := rr.clients[i].GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secret)})
	op.Ret = rr.rec.now()
	op.Status, op.Err, op.Outcome = classify(err, false)
	op.Message = apiMessage(err)
	if err == nil {
		op.VersionID, op.Read, op.Index = aws.ToString(out.VersionId), aws.ToString(out.SecretString), indexOf(out.ResultMetadata)
		op.Stages = nonNil(out.VersionStages)
	}
	rr.rec.w.Write(op)
	return op
}

// describe is DescribeSecret through node i, sent as a signed JSON
// request of its own so that Coffer's CofferRotationStatus member (which
// the SDK drops) is read: Rotating is its VersionId.
func (rr *rotRun) describe(ctx context.Context, i, proc int, secret string, final bool) check.Op {
	op := check.Op{ID: rr.rec.ids.Add(1), Process: proc, Node: rr.nodeIDs[i], Kind: check.KindDescribe, Secret: secret, Final: final}
	ctx, cancel := context.WithTimeout(ctx, rr.timeout)
	defer cancel()
	body, _ := json.Marshal(map[string]string{"SecretId": secret})
	op.Call = rr.rec.now()
	var out struct {
		VersionIdsToStages   map[string][]string
		CofferRotationStatus *struct{ VersionId string }
	}
	hdr, errType, msg, err := rr.rawCall(ctx, i, "DescribeSecret", body, &out)
	op.Ret = rr.rec.now()
	switch {
	case err != nil:
		op.Status, op.Err = check.StatusFail, err.Error()
	case errType != "":
		op.Status, op.Err, op.Message = check.StatusFail, errType, msg
	default:
		op.Status, op.Versions, op.Index = check.StatusOK, out.VersionIdsToStages, hdr.Get("X-Coffer-Index")
		if op.Versions == nil {
			op.Versions = map[string][]string{}
		}
		if out.CofferRotationStatus != nil {
			op.Rotating = out.CofferRotationStatus.VersionId
		}
	}
	if hdr != nil {
		op.Outcome = hdr.Get("X-Coffer-Outcome")
	}
	rr.rec.w.Write(op)
	return op
}

// rawCall POSTs one Secrets Manager JSON request to node i, SigV4-signed
// for "secretsmanager". An error answer comes back as its type and
// message.
func (rr *rotRun) rawCall(ctx context.Context, i int, operation string, body []byte, out any) (http.Header, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+rr.ns.list[i].api+"/", bytes.NewReader(body))
	if err != nil {
		return nil, "", "", err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "secretsmanager."+operation)
	acl.Sign(req, body, rr.creds.AccessKeyID, rr.creds.SecretAccessKey, region, "secretsmanager", time.Now())
	resp, err := rr.raw.Do(req)
	if err != nil {
		return nil, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.Header, "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		json.Unmarshal(b, &e)
		t := e.Type
		if k := strings.LastIndex(t, "#"); k >= 0 {
			t = t[k+1:]
		}
		if t == "" {
			t = fmt.Sprintf("HTTP %d", resp.StatusCode)
		}
		return resp.Header, t, e.Message, nil
	}
	return resp.Header, "", "", json.Unmarshal(b, out)
}

// admin is a root-signed admin call (signing name "coffer") to node i.
func (rr *rotRun) admin(ctx context.Context, i int, method, path string, body any) error {
	payload, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(ctx, 2*rr.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+rr.ns.list[i].api+path, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	acl.Sign(req, payload, rr.creds.AccessKeyID, rr.creds.SecretAccessKey, region, "coffer", time.Now())
	resp, err := rr.raw.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, b)
	}
	return nil
}

// --- the hook ---

// serveHook answers the webhook rotator's requests: it verifies each one
// with rotation.VerifyWebhook, runs the step as an AWS rotation Lambda
// would, records it in hook.jsonl, and answers 200, or 500 with the error.
func (rr *rotRun) serveHook(w http.ResponseWriter, r *http.Request) {
	h := check.HookCall{Call: rr.rec.now()}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = rotation.VerifyWebhook(rr.hookKey, r.Header.Get(rotation.HeaderTimestamp), r.Header.Get(rotation.HeaderSignature), body, time.Now(), 0)
	}
	var ev rotation.Event
	if err == nil {
		err = json.Unmarshal(body, &ev)
	}
	h.Step, h.Secret, h.Token = ev.Step, ev.SecretID, ev.ClientRequestToken
	if err != nil {
		h.Ret, h.Status, h.Err = rr.rec.now(), http.StatusUnauthorized, err.Error()
		rr.hookW.Write(h)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), rotHookDeadline)
	defer cancel()
	// A Lambda takes a while: 100-500 ms per step, so that a rotation
	// spends a second or two in its steps and a leader killed mid-step
	// is common (the next leader runs the step again).
	sleepCtx(ctx, rotHookWork[0]+rand.N(rotHookWork[1]-rotHookWork[0]))
	err = rr.hookStep(ctx, ev, &h)
	h.Ret = rr.rec.now()
	if err != nil {
		h.Status, h.Err = http.StatusInternalServerError, err.Error()
		rr.hookW.Write(h)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h.Status = http.StatusOK
	rr.hookW.Write(h)
	w.WriteHeader(http.StatusOK)
}

// transient: no answer, or a 5xx one (no leader, a node going down).
func transient(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode >= 500
	}
	return true
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// hookStep runs one step against any live node, moving on to the next
// node after a transient error, until ctx ends.
func (rr *rotRun) hookStep(ctx context.Context, ev rotation.Event, h *check.HookCall) error {
	i := int(rr.next.Add(1)) % len(rr.hookCli)
	var last error
	definite := 0
	for ctx.Err() == nil {
		c := rr.hookCli[i]
		var err error
		switch ev.Step {
		case rotation.StepCreate:
			err = rr.hookCreate(ctx, c, ev, h)
		case rotation.StepFinish:
			err = rr.hookFinish(ctx, c, ev, h)
		case rotation.StepSet, rotation.StepTest:
			return nil
		default:
			return fmt.Errorf("unknown step %q", ev.Step)
		}
		if err == nil {
			return nil
		}
		last = err
		if !transient(err) {
			// A definite refusal: read the state again (a finish whose
			// move took effect on an earlier attempt finds it done), a
			// few times at most.
			if definite++; definite >= 3 {
				return err
			}
		}
		i = (i + 1) % len(rr.hookCli)
		sleepCtx(ctx, 100*time.Millisecond)
	}
	if last == nil {
		last = ctx.Err()
	}
	return last
}

// hookCreate: as AWS's templates, the pending value is made once:
// GetSecretValue of the token's version with AWSPENDING; only when it has
// no value, PutSecretValue of "rot-"+token with that token and
// AWSPENDING (a retry sends the same token and value: idempotent).
func (rr *rotRun) hookCreate(ctx context.Context, c *secretsmanager.Client, ev rotation.Event, h *check.HookCall) error {
	_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(ev.SecretID),
		VersionId: aws.String(ev.ClientRequestToken), VersionStage: aws.String(check.StagePending)})
	if err == nil {
		h.Exists = true
		return nil
	}
	if apiCode(err) != "ResourceNotFoundException" {
		return fmt.Errorf("GetSecretValue AWSPENDING: %w", err)
	}
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(ev.SecretID),
		ClientRequestToken: aws.String(ev.ClientRequestToken), SecretString: aws.String(check.RotatedValue(ev.ClientRequestToken)),
		VersionStages: []string{check.StagePending}})
	if err != nil {
		return fmt.Errorf("PutSecretValue: %w", err)
	}
	h.Put = true
	return nil
}

// hookFinish: DescribeSecret, and unless the token already holds
// AWSCURRENT, UpdateSecretVersionStage moving AWSCURRENT from its holder
// to the token.
func (rr *rotRun) hookFinish(ctx context.Context, c *secretsmanager.Client, ev rotation.Event, h *check.HookCall) error {
	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(ev.SecretID)})
	if err != nil {
		return fmt.Errorf("DescribeSecret: %w", err)
	}
	cur := ""
	for v, st := range d.VersionIdsToStages {
		if slices.Contains(st, check.StageCurrent) {
			cur = v
		}
	}
	h.From, h.Pending = cur, slices.Contains(d.VersionIdsToStages[ev.ClientRequestToken], check.StagePending)
	if cur == ev.ClientRequestToken {
		h.Already = true
		return nil
	}
	out, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(ev.SecretID),
		VersionStage: aws.String(check.StageCurrent), MoveToVersionId: aws.String(ev.ClientRequestToken), RemoveFromVersionId: aws.String(cur)})
	if err != nil {
		return fmt.Errorf("UpdateSecretVersionStage from %s: %w", cur, err)
	}
	h.Moved, h.Index = true, indexOf(out.ResultMetadata)
	return nil
}

// --- workers ---

// rotator calls RotateSecret on secret through node i, one call per
// rotEvery, until ctx ends or the secret had rotMaxPerSecret rotations.
func (rr *rotRun) rotator(ctx context.Context, i int, secret string) {
	proc := rr.rec.newProcess()
	for ctx.Err() == nil {
		start := time.Now()
		rr.mu.Lock()
		ok := rr.started[secret] < rotMaxPerSecret
		if ok {
			rr.started[secret]++
		}
		rr.mu.Unlock()
		if !ok {
			return
		}
		op := rr.rotate(ctx, i, proc, secret)
		switch op.Status {
		case check.StatusFail:
			rr.mu.Lock()
			rr.started[secret]--
			rr.mu.Unlock()
		case check.StatusUnknown:
			proc = rr.rec.newProcess()
		}
		pace(ctx, start, rotEvery)
	}
}

// reader describes and reads AWSCURRENT of every secret in turn through
// node i.
func (rr *rotRun) reader(ctx context.Context, i int) {
	proc := rr.rec.newProcess()
	for n := 0; ctx.Err() == nil; n++ {
		start := time.Now()
		s := rr.secrets[n%len(rr.secrets)].Name
		rr.describe(ctx, i, proc, s, false)
		rr.get(ctx, i, proc, s, false)
		pace(ctx, start, rotReadEvery)
	}
}

// setup creates the signing key's secret, registers the hook's rotator
// and creates the rotated secrets (each create recorded as the secret's
// first put).
func (rr *rotRun) setup(ctx context.Context, hookURL string, n int) (string, error) {
	retry := func(what string, f func(i int) error) error {
		var err error
		for attempt := 0; attempt < 20; attempt++ {
			if err = f(attempt % len(rr.clients)); err == nil {
				return nil
			}
			if !sleepCtx(ctx, 500*time.Millisecond) {
				break
			}
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	key := make([]byte, 32)
	crand.Read(key)
	rr.hookKey = []byte(hex.EncodeToString(key))
	if err := retry("create "+rotSigningSecret, func(i int) error {
		c, cancel := context.WithTimeout(ctx, rr.timeout)
		defer cancel()
		_, err := rr.clients[i].CreateSecret(c, &secretsmanager.CreateSecretInput{Name: aws.String(rotSigningSecret),
			SecretString: aws.String(string(rr.hookKey)), ClientRequestToken: aws.String(rr.run + "-hook-key-00000000000000000000")})
		return err
	}); err != nil {
		return "", err
	}
	cfg := map[string]any{"name": rotRotatorName, "type": "webhook", "config": map[string]string{
		"url": hookURL, "signing_secret": rotSigningSecret, "allow_http": "true", "timeout": rotHookTimeoutCfg}}
	if err := retry("register the rotator", func(i int) error {
		err := rr.admin(ctx, i, http.MethodPost, "/v1/rotators", cfg)
		if err != nil && strings.Contains(err.Error(), "already exists") {
			return nil // an earlier attempt took effect
		}
		return err
	}); err != nil {
		return "", err
	}
	for k := range n {
		name := fmt.Sprintf("rotation-%s-%d", rr.run, k)
		var op check.Op
		var arn string
		err := retry("create "+name, func(i int) error {
			id := rr.rec.ids.Add(1)
			op = check.Op{ID: id, Process: rr.rec.newProcess(), Node: rr.nodeIDs[i], Kind: check.KindPut, Secret: name,
				Token: rr.token(id), Value: "jepsen/" + rr.run + "/" + name + "/initial"}
			c, cancel := context.WithTimeout(ctx, rr.timeout)
			defer cancel()
			op.Call = rr.rec.now()
			out, err := rr.clients[i].CreateSecret(c, &secretsmanager.CreateSecretInput{Name: aws.String(name),
				SecretString: aws.String(op.Value), ClientRequestToken: aws.String(op.Token)})
			op.Ret = rr.rec.now()
			op.Status, op.Err, op.Outcome = classify(err, true)
			if err == nil {
				op.VersionID, op.Index, arn = aws.ToString(out.VersionId), indexOf(out.ResultMetadata), aws.ToString(out.ARN)
			}
			rr.rec.w.Write(op)
			return err
		})
		if err != nil {
			return "", err
		}
		rr.secrets = append(rr.secrets, check.RotSecret{Name: name, ARN: arn, InitialToken: op.Token, InitialValue: op.Value})
	}
	return rotRotatorName, nil
}

// settle waits until a DescribeSecret (linearizable) of every secret shows
// no rotation in flight, or timeout. It returns the tokens still in flight.
func (rr *rotRun) settle(ctx context.Context, timeout time.Duration) (bool, []string) {
	proc := rr.rec.newProcess()
	deadline := time.Now().Add(timeout)
	for n := 0; ; n++ {
		var flying []string
		answered := 0
		for k, s := range rr.secrets {
			op := rr.describe(ctx, (n+k)%len(rr.clients), proc, s.Name, false)
			if op.Status == check.StatusOK {
				answered++
				if op.Rotating != "" {
					flying = append(flying, op.Rotating)
				}
			}
		}
		if answered == len(rr.secrets) && len(flying) == 0 {
			return true, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false, flying
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// finalReads: DescribeSecret and GetSecretValue of every secret on every
// node (recorded, final), then GetSecretValue by VersionId of every
// initial version and of every RotateSecret not definitely refused
// (final.jsonl).
func (rr *rotRun) finalReads(ops []check.Op, out *check.Writer) {
	proc := rr.rec.newProcess()
	for _, s := range rr.secrets {
		for i := range rr.clients {
			for attempt := 0; attempt < 5; attempt++ {
				if op := rr.describe(context.Background(), i, proc, s.Name, true); op.Status == check.StatusOK {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			for attempt := 0; attempt < 5; attempt++ {
				if op := rr.get(context.Background(), i, proc, s.Name, true); op.Status == check.StatusOK {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	w := &workload{clients: rr.clients, nodeIDs: rr.nodeIDs, timeout: rr.timeout}
	read := func(n int, secret, version string) {
		i := n % len(rr.clients)
		var fr check.FinalRead
		for attempt := 0; attempt < 5; attempt++ {
			if fr = w.finalRead(i, "version", secret, version); fr.Err == "" {
				break
			}
			i = (i + 1) % len(rr.clients)
			time.Sleep(200 * time.Millisecond)
		}
		out.Write(fr)
	}
	n := 0
	for _, s := range rr.secrets {
		read(n, s.Name, s.InitialToken)
		n++
	}
	for _, o := range ops {
		if o.Kind == check.KindRotate && o.Status != check.StatusFail {
			read(n, o.Secret, o.Token)
			n++
		}
	}
}

func (rr *rotRun) writeRun(dir string, run check.RotationRun) error {
	b, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "rotation.json"), b, 0o644)
}

func runRotation(ctx context.Context, o options, sc scenario, bin string, seed uint64) (*report, error) {
	if o.net != "proxy" {
		return nil, errors.New("rotation: the hook listens on 127.0.0.1, which nodes in network namespaces cannot reach; use --net proxy")
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
	logf("seed=%d nodes=%d faults=%v time-limit=%s results=%s", seed, sc.nodes, sc.faults, limit, dir)
	rng := rand.New(rand.NewPCG(seed, 0x6a657073656e))
	extra := append(append([]string{}, sc.serverArgs...), o.serverArgs...)
	// Each rotation adds a version (100 at most per secret): more secrets
	// for longer runs.
	nSecrets := rotSecrets * int(max(1, (limit+59*time.Second)/time.Minute))
	info := runInfo{Scenario: sc.name, Seed: seed, Nodes: sc.nodes, Net: o.net, Faults: sc.faults, Shapes: sc.shapes, TimeLimit: limit.String(),
		Rate:    int(float64(nSecrets*rotWorkersPer)/rotEvery.Seconds() + 2*float64(rotReaders)/rotReadEvery.Seconds()),
		Workers: nSecrets*rotWorkersPer + rotReaders, Keys: nSecrets, Started: start.Format(time.RFC3339), Bin: bin, Args: os.Args[1:]}
	if b, err := json.MarshalIndent(info, "", "  "); err == nil {
		os.WriteFile(filepath.Join(dir, "run.json"), b, 0o644)
	}
	creds := rootCreds{AccessKeyID: fmt.Sprintf("AKIAJEPSEN%010d", seed%1e10), SecretAccessKey: fmt.Sprintf("jepsen/secret/%016x", rng.Uint64())}
	ns, err := setupNodes(bin, dir, sc.nodes, creds, extra, needsFaultsBuild(o, sc), nil)
	if err != nil {
		return nil, err
	}
	netw, err := startProxy(ns)
	if err != nil {
		return nil, err
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

	files, closeFiles, err := createFiles(dir, "history.jsonl", "final.jsonl", "nemesis.jsonl", "samples.jsonl", "hook.jsonl")
	if err != nil {
		return nil, err
	}
	defer closeFiles()
	hist, final, nem := check.NewWriter(files["history.jsonl"]), check.NewWriter(files["final.jsonl"]), check.NewWriter(files["nemesis.jsonl"])
	rec := &recorder{base: start, w: hist}
	runID := fmt.Sprintf("%012x", seed)
	rr := &rotRun{rec: rec, run: runID[:12], creds: creds, ns: ns, timeout: o.requestTimeout, raw: &http.Client{Transport: apiTransport},
		hookW: check.NewWriter(files["hook.jsonl"]), started: map[string]int{}}
	for _, nd := range ns.list {
		rr.clients = append(rr.clients, newClient("https://"+nd.api, creds))
		rr.hookCli = append(rr.hookCli, hookClient("https://"+nd.api, creds))
		rr.nodeIDs = append(rr.nodeIDs, nd.id)
	}

	// The hook: plain HTTP on loopback (allow_http=true).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hookURL := "http://" + ln.Addr().String() + "/rotate"
	mux := http.NewServeMux()
	mux.HandleFunc("/rotate", rr.serveHook)
	hookSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go hookSrv.Serve(ln)
	defer hookSrv.Close()

	rotatorARN, err := rr.setup(ctx, hookURL, nSecrets)
	if err != nil {
		return nil, err
	}
	runRec := check.RotationRun{Secrets: rr.secrets, Rotator: rotatorARN, HookURL: hookURL}
	if err := rr.writeRun(dir, runRec); err != nil {
		return nil, err
	}
	logf("setup: hook at %s, %d secrets", hookURL, len(rr.secrets))

	// Main phase.
	mainCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var wg sync.WaitGroup
	for k := range nSecrets * rotWorkersPer {
		s := rr.secrets[k%nSecrets].Name
		i := (k/nSecrets + k) % len(rr.clients)
		wg.Add(1)
		go func() { defer wg.Done(); rr.rotator(mainCtx, i, s) }()
	}
	for k := range rotReaders {
		wg.Add(1)
		go func() { defer wg.Done(); rr.reader(mainCtx, k%len(rr.clients)) }()
	}
	samples := check.NewWriter(files["samples.jsonl"])
	wg.Add(1)
	go func() { defer wg.Done(); ns.sample(mainCtx, rec, samples) }()
	nm := &nemesis{faults: sc.faults, ns: ns, net: netw, rec: rec, w: nem, rng: rng, gap: o.gap, hold: sc.hold, logf: logf, shapes: sc.shapes}
	wg.Add(1)
	go func() { defer wg.Done(); nm.run(mainCtx) }()
	wg.Wait()
	samples.Flush()
	logf("main phase over; %d faults injected; healing", nm.injected)

	// Heal; liveness: a DescribeSecret answers, every rotation settles,
	// the nodes converge.
	nm.healAll()
	healT := time.Now()
	liveness := check.Result{Name: "liveness after heal", Verdict: check.Valid}
	settled, flying := rr.settle(ctx, rotSettleTimeout)
	runRec.Settled, runRec.InFlight = settled, flying
	runRec.SettleTime = time.Since(healT).Nanoseconds()
	settleRes := check.Result{Name: "rotations settle after heal", Verdict: check.Valid,
		Detail: fmt.Sprintf("no rotation in flight %.1fs after heal", time.Since(healT).Seconds())}
	if !settled {
		settleRes.Verdict = check.Invalid
		settleRes.Detail = fmt.Sprintf("rotations still in flight %s after heal: %v", rotSettleTimeout, flying)
	}
	logf("%s", settleRes.Detail)
	if _, err := ns.waitConverged(ctx, 60*time.Second); err != nil {
		liveness.Verdict, liveness.Detail = check.Invalid, err.Error()
	} else {
		liveness.Detail = fmt.Sprintf("nodes converged %.1fs after heal", time.Since(healT).Seconds())
	}
	if err := rr.writeRun(dir, runRec); err != nil {
		return nil, err
	}

	// Final reads.
	hist.Flush()
	ops, err := check.ReadJSONL[check.Op](filepath.Join(dir, "history.jsonl"))
	if err != nil {
		return nil, err
	}
	rr.finalReads(ops, final)
	hist.Flush()
	final.Flush()
	nem.Flush()
	rr.hookW.Flush()
	logf("final reads done")

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
	hookSrv.Close()
	rr.hookW.Flush()
	if err := dumpRaftLogs(dir, ns.list); err != nil {
		logf("raft log dump: %v", err)
	}
	var roots []string
	for _, nd := range ns.list {
		roots = append(roots, nd.dataDir, nd.logPath)
	}
	scan := check.ScanForMarker(rr.marker(), roots...)
	if b, err := json.MarshalIndent(scan, "", "  "); err == nil {
		os.WriteFile(filepath.Join(dir, "plaintext.json"), b, 0o644)
	}
	logf("plaintext scan: %d files, %d hits", scan.Files, len(scan.Hits))

	extraResults := []check.Result{liveness, settleRes}
	if len(sc.faults) > 0 && nm.injected == 0 {
		extraResults = append(extraResults, check.Result{Name: "coverage", Verdict: check.Unknown, Detail: "no fault was injected"})
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
