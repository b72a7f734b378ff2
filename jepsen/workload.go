package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/cofferhq/coffer/jepsen/check"
)

const region = "us-east-1"

// newClient is an SDK v2 client for one node: one HTTP attempt per call
// (no retries), so every operation in the history is one request.
func newClient(endpoint string, creds rootCreds) *secretsmanager.Client {
	return newRegionClient(endpoint, region, creds)
}

// newRegionClient is newClient signing for regionName.
func newRegionClient(endpoint, regionName string, creds rootCreds) *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region:       regionName,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, ""),
		HTTPClient: awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns, t.MaxIdleConnsPerHost = 64, 32
			t.TLSClientConfig = apiTransport.TLSClientConfig
		}),
		Retryer: aws.NopRetryer{},
	})
}

// recorder stamps operations and appends them to history.jsonl.
type recorder struct {
	base  time.Time
	w     *check.Writer
	ids   atomic.Int64
	procs atomic.Int64
}

func (r *recorder) now() int64 { return time.Since(r.base).Nanoseconds() }

func (r *recorder) newProcess() int { return int(r.procs.Add(1)) }

// classify turns an SDK error into a status, the error type, and the
// X-Coffer-Outcome header. Writes: ok on success; fail only when the
// server said not-applied or the connection was refused (nothing was
// sent); unknown otherwise (timeouts, resets, missing header). Reads are
// never unknown: a failed read observed nothing.
func classify(err error, write bool) (status, errType, outcome string) {
	if err == nil {
		return check.StatusOK, "", ""
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		outcome = re.Response.Header.Get("X-Coffer-Outcome")
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		errType = ae.ErrorCode()
	} else {
		errType = err.Error()
		if len(errType) > 200 {
			errType = errType[:200]
		}
	}
	switch {
	case !write:
		return check.StatusFail, errType, outcome
	case outcome == "not-applied":
		return check.StatusFail, errType, outcome
	case errors.Is(err, syscall.ECONNREFUSED):
		return check.StatusFail, "connection refused", outcome
	}
	return check.StatusUnknown, errType, outcome
}

func indexOf(md middleware.Metadata) string {
	if raw, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok && raw != nil {
		return raw.Header.Get("X-Coffer-Index")
	}
	return ""
}

// workload drives the register and set workloads.
type workload struct {
	rec      *recorder
	run      string
	clients  []*secretsmanager.Client // one per node
	nodeIDs  []string
	timeout  time.Duration
	secrets  []string // register secrets, created in setup
	groups   int
	perKey   int
	mu       sync.Mutex
	groupOps []int // ops done per group
	groupKey []int // current secret index per group
	nextKey  int
	creates  atomic.Int64
	moves    bool                 // label-move workload on the register secrets
	retries  bool                 // retry unknown puts with the same token and value
	seen     map[string][2]string // secret -> last seen AWSCURRENT, AWSPREVIOUS holders
	acked    map[string][]string  // secret -> tokens of acknowledged puts

	// churn: names in use at once, ops per name before the workers move
	// to a fresh batch of names (keeps porcupine's search small), and
	// every name used.
	churnNames, churnPerName int
	churnCount               atomic.Int64
	churnSeen                map[string]bool
	churnList                []string
}

// marker starts every value the workloads write (and nothing else they
// send), so the plaintext scan can look for it in the nodes' files.
func (w *workload) marker() string { return "jepsen/" + w.run + "/" }

func (w *workload) token(id int64) string {
	// 32-64 characters, unique in the run.
	return fmt.Sprintf("%s-%020d", w.run, id)
}

// put writes a unique value with a unique token to secret via node i.
func (w *workload) put(ctx context.Context, i, proc int, secret string, create bool) check.Op {
	id := w.rec.ids.Add(1)
	op := check.Op{ID: id, Process: proc, Node: w.nodeIDs[i], Kind: check.KindPut, Secret: secret,
		Token: w.token(id), Value: fmt.Sprintf("%s%s/%d/%x", w.marker(), secret, id, rand.Uint64())}
	return w.send(ctx, i, op, create)
}

// retryPut sends the PutSecretValue of orig again, with the same token
// and value, through node i (research §7, kill: an idempotent retry
// after an unknown outcome must end ok with that VersionId, never
// ResourceExistsException).
func (w *workload) retryPut(ctx context.Context, i, proc int, orig check.Op) check.Op {
	op := check.Op{ID: w.rec.ids.Add(1), Process: proc, Node: w.nodeIDs[i], Kind: check.KindPut, Secret: orig.Secret,
		Token: orig.Token, Value: orig.Value, RetryOf: orig.ID}
	if orig.RetryOf != 0 {
		op.RetryOf = orig.RetryOf
	}
	return w.send(ctx, i, op, false)
}

func (w *workload) send(ctx context.Context, i int, op check.Op, create bool) check.Op {
	secret := op.Secret
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	op.Call = w.rec.now()
	var err error
	var md middleware.Metadata
	var vid string
	if create {
		var out *secretsmanager.CreateSecretOutput
		out, err = w.clients[i].CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(secret),
			SecretString: aws.String(op.Value), ClientRequestToken: aws.String(op.Token)})
		if err == nil {
			md, vid = out.ResultMetadata, aws.ToString(out.VersionId)
		}
	} else {
		var out *secretsmanager.PutSecretValueOutput
		out, err = w.clients[i].PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(secret),
			SecretString: aws.String(op.Value), ClientRequestToken: aws.String(op.Token)})
		if err == nil {
			md, vid = out.ResultMetadata, aws.ToString(out.VersionId)
			op.Stages = nonNil(out.VersionStages)
		}
	}
	op.Ret = w.rec.now()
	op.Status, op.Err, op.Outcome = classify(err, true)
	if err == nil {
		op.VersionID, op.Index = vid, indexOf(md)
		w.observe(secret, vid, "")
		w.mu.Lock()
		if w.acked == nil {
			w.acked = map[string][]string{}
		}
		w.acked[secret] = append(w.acked[secret], op.Token)
		w.mu.Unlock()
	}
	w.rec.w.Write(op)
	return op
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

// get reads secret by label (stage; "" is the default, AWSCURRENT) via
// node i.
func (w *workload) get(ctx context.Context, i, proc int, secret, stage string, final bool) check.Op {
	return w.read(ctx, check.Op{ID: w.rec.ids.Add(1), Process: proc, Node: w.nodeIDs[i], Kind: check.KindGet, Secret: secret, Final: final, Stage: stage}, i)
}

// getVersion is GetSecretValue by VersionId: of a version some put was
// acknowledged for, or, one time in five, of one never written (which
// must not be found).
func (w *workload) getVersion(ctx context.Context, i, proc int, secret string, rng *rand.Rand) check.Op {
	op := check.Op{ID: w.rec.ids.Add(1), Process: proc, Node: w.nodeIDs[i], Kind: check.KindGet, Secret: secret}
	w.mu.Lock()
	acked := w.acked[secret]
	if len(acked) > 0 && rng.IntN(5) > 0 {
		op.ByVersion = acked[rng.IntN(len(acked))]
	}
	w.mu.Unlock()
	if op.ByVersion == "" {
		op.ByVersion = fmt.Sprintf("%s-never-%020d", w.run, op.ID) // no put sends this token
	}
	return w.read(ctx, op, i)
}

func (w *workload) read(ctx context.Context, op check.Op, i int) check.Op {
	secret, stage := op.Secret, op.Stage
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(secret)}
	if stage != "" {
		in.VersionStage = aws.String(stage)
	}
	if op.ByVersion != "" {
		in.VersionId = aws.String(op.ByVersion)
	}
	op.Call = w.rec.now()
	out, err := w.clients[i].GetSecretValue(ctx, in)
	op.Ret = w.rec.now()
	op.Status, op.Err, op.Outcome = classify(err, false)
	if err == nil {
		op.VersionID, op.Read, op.Index = aws.ToString(out.VersionId), aws.ToString(out.SecretString), indexOf(out.ResultMetadata)
		op.Stages = nonNil(out.VersionStages)
		if op.ByVersion != "" {
			// Not a read of a label: nothing for the label moves to guess from.
		} else if op.ReadStage() == check.StageCurrent {
			w.observe(secret, op.VersionID, "")
		} else if op.ReadStage() == check.StagePrevious {
			w.observe(secret, "", op.VersionID)
		}
	} else if op.Err == "ResourceNotFoundException" {
		op.Status = check.StatusOK // a definite answer the model checks
	}
	w.rec.w.Write(op)
	return op
}

// observe remembers the latest AWSCURRENT / AWSPREVIOUS holder a worker
// saw for secret; label moves use it as their guess (a compare-and-set
// that may fail).
func (w *workload) observe(secret, cur, prev string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == nil {
		w.seen = map[string][2]string{}
	}
	s := w.seen[secret]
	if cur != "" {
		if s[0] != "" && s[0] != cur {
			s[1] = s[0]
		}
		s[0] = cur
	}
	if prev != "" {
		s[1] = prev
	}
	w.seen[secret] = s
}

// move is UpdateSecretVersionStage: AWSCURRENT from the version the
// worker last saw holding it to the one it last saw as AWSPREVIOUS. An
// InvalidParameterException is a definite answer (the compare-and-set
// failed, or a version does not exist) that the model checks.
func (w *workload) move(ctx context.Context, i, proc int, secret string) check.Op {
	w.mu.Lock()
	guess := w.seen[secret]
	w.mu.Unlock()
	op := check.Op{ID: w.rec.ids.Add(1), Process: proc, Node: w.nodeIDs[i], Kind: check.KindMove, Secret: secret,
		Stage: check.StageCurrent, RemoveFrom: guess[0], MoveTo: guess[1]}
	if op.MoveTo == "" || op.RemoveFrom == "" {
		return w.get(ctx, i, proc, secret, check.StagePrevious, false)
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	op.Call = w.rec.now()
	out, err := w.clients[i].UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secret),
		VersionStage: aws.String(op.Stage), RemoveFromVersionId: aws.String(op.RemoveFrom), MoveToVersionId: aws.String(op.MoveTo)})
	op.Ret = w.rec.now()
	op.Status, op.Err, op.Outcome = classify(err, true)
	switch {
	case err == nil:
		op.Index = indexOf(out.ResultMetadata)
		w.observe(secret, op.MoveTo, op.RemoveFrom)
	case op.Err == "InvalidParameterException":
		op.Status = check.StatusOK // the state refused the compare-and-set
	}
	w.rec.w.Write(op)
	return op
}

// create adds a unique element to the set workload.
func (w *workload) create(ctx context.Context, i, proc int) check.Op {
	id := w.rec.ids.Add(1)
	name := fmt.Sprintf("set-%s-%d", w.run, w.creates.Add(1))
	op := check.Op{ID: id, Process: proc, Node: w.nodeIDs[i], Kind: check.KindCreate, Secret: name, Token: w.token(id), Value: w.marker() + name}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	op.Call = w.rec.now()
	out, err := w.clients[i].CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name),
		SecretString: aws.String(op.Value), ClientRequestToken: aws.String(op.Token)})
	op.Ret = w.rec.now()
	op.Status, op.Err, op.Outcome = classify(err, true)
	if err == nil {
		op.VersionID, op.Index = aws.ToString(out.VersionId), indexOf(out.ResultMetadata)
	}
	w.rec.w.Write(op)
	return op
}

// setup creates the register secrets (no faults yet); each create is
// recorded as the secret's first put.
func (w *workload) setup(ctx context.Context, n int) error {
	for k := range n {
		name := fmt.Sprintf("reg-%s-%03d", w.run, k)
		var op check.Op
		for attempt := 0; ; attempt++ {
			op = w.put(ctx, k%len(w.clients), w.rec.newProcess(), name, true)
			if op.Status == check.StatusOK {
				break
			}
			if attempt > 20 || op.Status == check.StatusUnknown {
				return fmt.Errorf("setup: create %s: %s %s", name, op.Status, op.Err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		w.secrets = append(w.secrets, name)
	}
	w.groupOps = make([]int, w.groups)
	w.groupKey = make([]int, w.groups)
	for g := range w.groups {
		w.groupKey[g] = g
	}
	w.nextKey = w.groups
	return nil
}

// key returns the secret a worker of group g uses next: each group works
// on one secret for perKey operations, then moves to a fresh one (so
// porcupine's search stays small).
func (w *workload) key(g int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.groupOps[g]++
	if w.groupOps[g] > w.perKey {
		w.groupOps[g] = 1
		w.groupKey[g] = w.nextKey % len(w.secrets)
		w.nextKey++
	}
	return w.secrets[w.groupKey[g]]
}

// registerWorker runs puts and gets (half each) against its node until
// ctx ends, pacing itself to one op per interval. With label moves: 40%
// puts, 30% gets of AWSCURRENT, 15% gets of AWSPREVIOUS, 15% moves of
// AWSCURRENT (UpdateSecretVersionStage with RemoveFromVersionId).
func (w *workload) registerWorker(ctx context.Context, g, i int, interval time.Duration, rng *rand.Rand) {
	proc := w.rec.newProcess()
	for ctx.Err() == nil {
		start := time.Now()
		secret := w.key(g)
		var op check.Op
		switch x := rng.IntN(20); {
		case !w.moves && x < 10, w.moves && x < 8:
			op = w.put(context.Background(), i, proc, secret, false)
		case !w.moves && x < 17, w.moves && x < 12:
			op = w.get(context.Background(), i, proc, secret, "", false)
		case !w.moves, x < 14:
			op = w.getVersion(context.Background(), i, proc, secret, rng)
		case x < 17:
			op = w.get(context.Background(), i, proc, secret, check.StagePrevious, false)
		default:
			op = w.move(context.Background(), i, proc, secret)
		}
		if op.Status == check.StatusUnknown {
			proc = w.rec.newProcess()
			if op.Kind == check.KindPut && w.retries {
				proc = w.retryUntilKnown(ctx, i, proc, op)
			}
		}
		pace(ctx, start, interval)
	}
}

// retryUntilKnown retries an unknown put with the same token and value,
// on the next node each time (the first may be dead), every 250 ms,
// until it is acknowledged or definitely refused, at most 20 times or
// until ctx ends. It returns the process to continue with.
func (w *workload) retryUntilKnown(ctx context.Context, i, proc int, orig check.Op) int {
	for attempt := 1; attempt <= 20 && ctx.Err() == nil; attempt++ {
		time.Sleep(250 * time.Millisecond)
		op := w.retryPut(context.Background(), (i+attempt)%len(w.clients), proc, orig)
		switch {
		case op.Status == check.StatusOK:
			return proc
		case op.Status == check.StatusUnknown:
			proc = w.rec.newProcess()
		case op.Err != "connection refused" && op.Err != "ServiceUnavailable":
			return proc // a definite answer (ResourceExistsException would be a bug the checker reports)
		}
	}
	return proc
}

func (w *workload) setWorker(ctx context.Context, i int, interval time.Duration) {
	proc := w.rec.newProcess()
	for ctx.Err() == nil {
		start := time.Now()
		if op := w.create(context.Background(), i, proc); op.Status == check.StatusUnknown {
			proc = w.rec.newProcess()
		}
		pace(ctx, start, interval)
	}
}

func pace(ctx context.Context, start time.Time, interval time.Duration) {
	d := interval - time.Since(start)
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// churnOp runs one operation of the create/delete churn workload on one
// of the names of the current batch: 30% CreateSecret (unique token and
// value), 15% DeleteSecret with ForceDeleteWithoutRecovery, 15%
// DeleteSecret with a 7-day window, 15% RestoreSecret, 25%
// DescribeSecret. Error answers the model defines
// (ResourceExistsException, ResourceNotFoundException,
// InvalidRequestException) are definite answers, recorded ok with the
// error.
func (w *workload) churnOp(ctx context.Context, i, proc int, rng *rand.Rand) check.Op {
	n := w.churnCount.Add(1) - 1
	batch := n / int64(w.churnNames*w.churnPerName)
	name := fmt.Sprintf("churn-%s-%d-%d", w.run, batch, rng.IntN(w.churnNames))
	w.mu.Lock()
	if !w.churnSeen[name] {
		w.churnSeen[name] = true
		w.churnList = append(w.churnList, name)
	}
	w.mu.Unlock()
	x := rng.IntN(20)
	if x >= 15 {
		return w.describe(ctx, i, proc, name, false)
	}
	id := w.rec.ids.Add(1)
	op := check.Op{ID: id, Process: proc, Node: w.nodeIDs[i], Secret: name}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	var err error
	var md middleware.Metadata
	op.Call = w.rec.now()
	switch {
	case x < 6:
		op.Kind, op.Token, op.Value = check.KindChurnCreate, w.token(id), fmt.Sprintf("%s%s/%d", w.marker(), name, id)
		var out *secretsmanager.CreateSecretOutput
		out, err = w.clients[i].CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name),
			SecretString: aws.String(op.Value), ClientRequestToken: aws.String(op.Token)})
		if err == nil {
			md, op.VersionID = out.ResultMetadata, aws.ToString(out.VersionId)
		}
	case x < 12:
		op.Kind, op.Force = check.KindChurnDelete, x < 9
		in := &secretsmanager.DeleteSecretInput{SecretId: aws.String(name)}
		if op.Force {
			in.ForceDeleteWithoutRecovery = aws.Bool(true)
		} else {
			in.RecoveryWindowInDays = aws.Int64(7)
		}
		var out *secretsmanager.DeleteSecretOutput
		if out, err = w.clients[i].DeleteSecret(ctx, in); err == nil {
			md = out.ResultMetadata
		}
	default:
		op.Kind = check.KindChurnRestore
		var out *secretsmanager.RestoreSecretOutput
		if out, err = w.clients[i].RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String(name)}); err == nil {
			md = out.ResultMetadata
		}
	}
	op.Ret = w.rec.now()
	op.Status, op.Err, op.Outcome = classify(err, true)
	if err == nil {
		op.Index = indexOf(md)
	} else if op.Status == check.StatusFail && modelError(op.Err) {
		op.Status = check.StatusOK
	}
	w.rec.w.Write(op)
	return op
}

// modelError is an error answer the churn model defines.
func modelError(t string) bool {
	return t == "ResourceExistsException" || t == "ResourceNotFoundException" || t == "InvalidRequestException"
}

// describe is DescribeSecret of a churn name: whether it exists, whether
// it is scheduled for deletion, and which version holds AWSCURRENT.
func (w *workload) describe(ctx context.Context, i, proc int, name string, final bool) check.Op {
	op := check.Op{ID: w.rec.ids.Add(1), Process: proc, Node: w.nodeIDs[i], Kind: check.KindChurnDescribe, Secret: name, Final: final}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	op.Call = w.rec.now()
	out, err := w.clients[i].DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	op.Ret = w.rec.now()
	op.Status, op.Err, op.Outcome = classify(err, false)
	switch {
	case err == nil:
		op.Index, op.Scheduled = indexOf(out.ResultMetadata), out.DeletedDate != nil
		for v, stages := range out.VersionIdsToStages {
			for _, s := range stages {
				if s == check.StageCurrent {
					op.VersionID = v
				}
			}
		}
	case op.Err == "ResourceNotFoundException":
		op.Status = check.StatusOK
	}
	w.rec.w.Write(op)
	return op
}

func (w *workload) churnWorker(ctx context.Context, i int, interval time.Duration, rng *rand.Rand) {
	proc := w.rec.newProcess()
	for ctx.Err() == nil {
		start := time.Now()
		if op := w.churnOp(context.Background(), i, proc, rng); op.Status == check.StatusUnknown {
			proc = w.rec.newProcess()
		}
		pace(ctx, start, interval)
	}
}
