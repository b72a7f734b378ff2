package rotation

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-memdb"
)

// The scheduler runs on the region's leader only, as leader work
// (region.RegisterLeaderWork): it starts when this node gains leadership
// and stops when it loses it, and the next term's scheduler starts only
// after this one returned. It keeps no state of its own: which rotation is
// in flight, at which step, and when to retry are in the FSM, written
// through Raft after every step, so a new leader resumes a rotation its
// predecessor left half done by running the step that was not recorded
// again (steps are idempotent). Every command it writes names the state it
// was decided on (the window, the token and step), and the FSM refuses it
// if that state moved on, so a deposed leader's late write changes nothing.

// Region is what the scheduler needs of its region.
type Region interface {
	Read(ctx context.Context, stale bool) (*memdb.Txn, uint64, error)
	Apply(ctx context.Context, t fsm.CommandType, cmd any) (*fsm.Result, uint64, error)
	Now() time.Time
	RegisterLeaderWork(name string, work func(ctx context.Context))
}

// Config configures a Scheduler.
type Config struct {
	Region Region
	Logger hclog.Logger
	// Tick is how often the scheduler looks for due work (default 1s).
	Tick time.Duration
	// StepTimeout bounds one step of a rotator (default 5m).
	StepTimeout time.Duration
	// Workers bounds the rotations that run at once (default 8).
	Workers int
	// Retry is how long to wait before the attempt after the n-th
	// failure (default: Backoff(30 * time.Second)).
	Retry func(failures int) time.Duration
	// Build makes the rotator a registration describes (default: a
	// Builder without an exec directory).
	Build func(*fsm.Rotator) (Rotator, error)
}

// Scheduler drives a region's rotations.
type Scheduler struct {
	cfg Config
	api atomic.Pointer[API]
	// busy holds the ARNs whose rotation a worker is running.
	mu   sync.Mutex
	busy map[string]bool
}

// New makes the region's scheduler and registers it as leader work: call
// it before the region starts. It invokes no rotator before SetAPI.
func New(cfg Config) *Scheduler {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = 5 * time.Minute
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Retry == nil {
		cfg.Retry = Backoff(30 * time.Second)
	}
	if cfg.Build == nil {
		cfg.Build = Builder{}.Build
	}
	s := &Scheduler{cfg: cfg, busy: map[string]bool{}}
	cfg.Region.RegisterLeaderWork("rotation", s.run)
	return s
}

// SetAPI gives the scheduler the API its rotators call (the server's,
// which exists only once the region has started).
func (s *Scheduler) SetAPI(api API) { s.api.Store(&api) }

// Backoff waits first after the first failure, twice as long after each
// further one, and at most an hour (--rotation-retry sets first).
func Backoff(first time.Duration) func(failures int) time.Duration {
	return func(failures int) time.Duration {
		d := first
		for i := 1; i < failures && d < time.Hour; i++ {
			d *= 2
		}
		return min(d, time.Hour)
	}
}

func (s *Scheduler) run(ctx context.Context) {
	s.cfg.Logger.Info("rotation scheduler started")
	defer s.cfg.Logger.Info("rotation scheduler stopped")
	sem := make(chan struct{}, s.cfg.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		if s.api.Load() != nil {
			for _, arn := range s.due(ctx) {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					s.rotate(ctx, arn)
					s.mu.Lock()
					delete(s.busy, arn)
					s.mu.Unlock()
				}()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// due lists the secrets with work to do now that no worker runs, and
// marks them busy.
func (s *Scheduler) due(ctx context.Context) []string {
	txn, _, err := s.cfg.Region.Read(ctx, true)
	if err != nil {
		return nil
	}
	secrets, err := fsm.RotatingSecrets(txn)
	if err != nil {
		s.cfg.Logger.Error("listing the secrets to rotate", "error", err)
		return nil
	}
	now := s.cfg.Region.Now().UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, sec := range secrets {
		if s.busy[sec.ARN] || !needsWork(sec, now) {
			continue
		}
		s.busy[sec.ARN] = true
		out = append(out, sec.ARN)
	}
	return out
}

// needsWork: a rotation in flight whose retry time came, or a schedule
// whose next start came. A secret scheduled for deletion, a replica (its
// primary rotates it) and a demoted one rotate nothing.
func needsWork(sec *fsm.Secret, now int64) bool {
	rot := sec.Rotation
	if sec.Scheduled() || sec.IsReplica() || sec.Demoted || !rot.Rotating() {
		return false
	}
	if rot.Token != "" {
		return now >= rot.RetryAt
	}
	return rot.Enabled && rot.NextStart != 0 && now >= rot.NextStart
}

// rotate runs the secret's rotation from the step its state says until
// it finishes, fails, or leadership ends.
func (s *Scheduler) rotate(ctx context.Context, arn string) {
	log := s.cfg.Logger.With("secret", arn)
	for ctx.Err() == nil {
		txn, _, err := s.cfg.Region.Read(ctx, true)
		if err != nil {
			return
		}
		sec := fsm.SecretByARN(txn, arn)
		if sec == nil || !needsWork(sec, s.cfg.Region.Now().UnixMilli()) {
			return
		}
		rot := sec.Rotation
		if rot.Token == "" {
			if err := s.start(ctx, sec); err != nil {
				log.Warn("could not start the scheduled rotation", "error", err)
				return
			}
			log.Info("scheduled rotation started")
			continue
		}
		next, err := s.step(ctx, txn, sec)
		if !next || err != nil {
			if err != nil && ctx.Err() == nil {
				log.Warn("recording a rotation step failed", "error", err)
			}
			return
		}
	}
}

// start begins the rotation the schedule asks for. A version that still
// carries AWSPENDING from a rotation that never finished (cancelled, or
// abandoned) is reattempted, as AWS does, rather than refused.
func (s *Scheduler) start(ctx context.Context, sec *fsm.Secret) error {
	token := ""
	if p := sec.Staged(fsm.StagePending); p != nil && !slices.Contains(p.Stages, fsm.StageCurrent) {
		token = p.VersionID
	} else {
		token = crypto.RandomUUID()
	}
	_, _, err := s.cfg.Region.Apply(ctx, fsm.CmdRotateSecret, &fsm.RotateSecret{ARN: sec.ARN, Start: true, Token: token,
		Scheduled: true, Window: sec.Rotation.NextStart, Date: s.cfg.Region.Now().UnixMilli()})
	return err
}

// step runs the rotation's current step and records its outcome; next
// reports whether the rotation goes on to another step now.
func (s *Scheduler) step(ctx context.Context, txn *memdb.Txn, sec *fsm.Secret) (next bool, err error) {
	rot := sec.Rotation
	step := rot.Step
	if step == "" {
		step = StepCreate
	}
	progress := &fsm.RotationProgress{ARN: sec.ARN, Token: rot.Token, Step: rot.Step}
	v := sec.Version(rot.Token)
	if v == nil || (!slices.Contains(v.Stages, fsm.StagePending) && !slices.Contains(v.Stages, fsm.StageCurrent)) {
		// A client moved AWSPENDING away (or put a new current value,
		// which drops it): the rotation has nothing left to finish.
		progress.Abandon = true
		progress.Error = fmt.Sprintf("Rotation of version %s abandoned: the version no longer has the AWSPENDING label.", rot.Token)
		err := s.record(ctx, progress)
		if err == nil {
			s.notify(ctx, "RotationAbandoned", sec.ARN, progress.Error)
		}
		return false, err
	}
	if rot.Step == "" && rot.Attempts == 0 {
		// The first attempt of the first step (a new leader that runs it
		// again notifies again).
		s.notify(ctx, "RotationStarted", sec.ARN, "")
	}
	stepErr := s.invoke(ctx, txn, sec, step)
	if ctx.Err() != nil {
		// Leadership ended mid-step: the next leader runs the step again.
		return false, nil
	}
	if stepErr == nil && step == StepFinish {
		stepErr = s.checkFinished(ctx, sec.ARN, rot.Token)
	}
	now := s.cfg.Region.Now()
	switch {
	case stepErr != nil:
		progress.Error = fmt.Sprintf("%s failed: %v", step, stepErr)
		progress.RetryAt = now.Add(s.cfg.Retry(rot.Attempts + 1)).UnixMilli()
		s.cfg.Logger.Warn("rotation step failed", "secret", sec.ARN, "step", step, "attempt", rot.Attempts+1,
			"retry_at", time.UnixMilli(progress.RetryAt).UTC(), "error", stepErr)
		s.notify(ctx, "RotationFailed", sec.ARN, progress.Error)
		return false, s.record(ctx, progress)
	case step == StepFinish:
		progress.Done = true
		if rot.Enabled {
			sched, err := ParseRules(Rules{AutomaticallyAfterDays: rot.AfterDays, ScheduleExpression: rot.Expression, Duration: rot.Duration})
			if err != nil {
				return false, fmt.Errorf("the stored schedule does not parse: %w", err)
			}
			start, end := NextStart(sched, sec.ARN, now)
			progress.NextStart, progress.NextDate = start.UnixMilli(), end.UnixMilli()
		}
		if err := s.record(ctx, progress); err != nil {
			return false, err
		}
		s.cfg.Logger.Info("rotation finished", "secret", sec.ARN, "version", rot.Token)
		s.notify(ctx, "RotationSucceeded", sec.ARN, "")
		return false, nil
	default:
		progress.Next = Steps[slices.Index(Steps, step)+1]
		return true, s.record(ctx, progress)
	}
}

// invoke runs one step of the secret's rotator.
func (s *Scheduler) invoke(ctx context.Context, txn *memdb.Txn, sec *fsm.Secret, step string) error {
	reg, err := fsm.RotatorByARN(txn, sec.Rotation.Rotator)
	if err != nil {
		return err
	}
	if reg == nil {
		return fmt.Errorf("the rotator %s is not registered (coffer rotator list)", sec.Rotation.Rotator)
	}
	r, err := s.cfg.Build(reg)
	if err != nil {
		return fmt.Errorf("rotator %s: %w", reg.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StepTimeout)
	defer cancel()
	return safeStep(ctx, r, *s.api.Load(), Event{Step: step, SecretID: sec.ARN, ClientRequestToken: sec.Rotation.Token})
}

// notify hands a service event to the API, if it records them.
func (s *Scheduler) notify(ctx context.Context, name, arn, message string) {
	if api := s.api.Load(); api != nil {
		if n, ok := (*api).(Notifier); ok {
			n.RotationEvent(ctx, name, arn, message)
		}
	}
}

// safeStep runs a step; a rotator that panics fails the step instead of
// taking the node down.
func safeStep(ctx context.Context, r Rotator, api API, ev Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the rotator panicked: %v", p)
		}
	}()
	return r.Step(ctx, api, ev)
}

// checkFinished: finishSecret must leave AWSCURRENT on the new version.
func (s *Scheduler) checkFinished(ctx context.Context, arn, token string) error {
	txn, _, err := s.cfg.Region.Read(ctx, false)
	if err != nil {
		return err
	}
	sec := fsm.SecretByARN(txn, arn)
	if sec == nil {
		return errors.New("the secret is gone")
	}
	if v := sec.Version(token); v == nil || !slices.Contains(v.Stages, fsm.StageCurrent) {
		return fmt.Errorf("the rotator returned without moving AWSCURRENT to version %s", token)
	}
	return nil
}

// record writes a step's outcome. The FSM refuses it when the rotation
// moved on meanwhile (a new leader recorded it, a client cancelled):
// that is not this scheduler's error to report.
func (s *Scheduler) record(ctx context.Context, p *fsm.RotationProgress) error {
	p.Date = s.cfg.Region.Now().UnixMilli()
	_, _, err := s.cfg.Region.Apply(ctx, fsm.CmdRotationProgress, p)
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Code == apierr.InvalidRequest {
		s.cfg.Logger.Debug("rotation progress not recorded", "secret", p.ARN, "reason", ae.Message)
		return nil
	}
	return err
}

// NextStart is when the scheduler starts the rotation of schedule's first
// window after `after` (a moment inside the window, spread over its first
// nine tenths so that secrets on one schedule do not all rotate at once,
// and the same on every node), and the window's end (NextRotationDate).
func NextStart(sched Schedule, arn string, after time.Time) (start, end time.Time) {
	start, end = sched.Window(after)
	span := end.Sub(start) * 9 / 10 / time.Second
	if span <= 0 {
		return start, end
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%d", arn, start.Unix())
	return start.Add(time.Duration(h.Sum64()%uint64(span)) * time.Second), end
}
