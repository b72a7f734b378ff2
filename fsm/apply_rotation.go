package fsm

import (
	"slices"

	"github.com/cofferhq/coffer/apierr"
	"github.com/hashicorp/go-memdb"
)

// Commands of rotation (rotation.go).
const (
	CmdRotateSecret     CommandType = 31
	CmdCancelRotation   CommandType = 32
	CmdRotationProgress CommandType = 33
	CmdPutRotator       CommandType = 34
	CmdDeleteRotator    CommandType = 35
)

// RotationConfig is the configuration RotateSecret sets.
type RotationConfig struct {
	// Rotator is a registered rotator's ARN.
	Rotator string
	// Rules is set when the request had RotationRules: the schedule
	// becomes AfterDays / Expression / Duration and runs (Enabled).
	Rules      bool
	AfterDays  int64  `codec:",omitempty"`
	Expression string `codec:",omitempty"`
	Duration   string `codec:",omitempty"`
	External   []Tag  `codec:",omitempty"`
	RoleARN    string `codec:",omitempty"`
}

// RotateSecret configures a secret's rotation and, with Start, starts a
// rotation whose new version is Token: the version is created without a
// value and labelled AWSPENDING, and the scheduler runs the steps.
type RotateSecret struct {
	ARN string
	// Config replaces the configuration; nil keeps it (the scheduler's
	// starts).
	Config *RotationConfig `codec:",omitempty"`
	Start  bool
	Token  string `codec:",omitempty"`
	// Scheduled marks the scheduler's start of the window that starts at
	// Window (Rotation.NextStart): a no-op error unless that window is
	// still the next one and nothing is in flight, so a start decided by
	// a deposed leader cannot start a second rotation.
	Scheduled bool  `codec:",omitempty"`
	Window    int64 `codec:",omitempty"`
	// NextStart and NextDate are the schedule's next window as the
	// writer computed it, recorded when Config has rules.
	NextStart int64 `codec:",omitempty"`
	NextDate  int64 `codec:",omitempty"`
	Date      int64
}

// CancelRotation is CancelRotateSecret: the schedule stops and the
// rotation in flight is dropped; labels stay as they are.
type CancelRotation struct {
	ARN  string
	Date int64
}

// RotationProgress records the outcome of one step of the rotation in
// flight with Token, whose step was Step. It is a no-op error unless that
// rotation is still at that step: a deposed leader's late report changes
// nothing.
type RotationProgress struct {
	ARN   string
	Token string
	Step  string `codec:",omitempty"`
	// Next is the step to run next, after a success.
	Next string `codec:",omitempty"`
	// Done: finishSecret succeeded (the token's version is AWSCURRENT);
	// NextStart and NextDate are the schedule's next window.
	Done      bool  `codec:",omitempty"`
	NextStart int64 `codec:",omitempty"`
	NextDate  int64 `codec:",omitempty"`
	// Error: the step failed; the rotation starts again from createSecret
	// at RetryAt. Abandon drops the rotation (its version lost
	// AWSPENDING: a client replaced it), Error saying why.
	Error   string `codec:",omitempty"`
	RetryAt int64  `codec:",omitempty"`
	Abandon bool   `codec:",omitempty"`
	Date    int64
}

// PutRotator registers a rotator, or with Replace changes one.
type PutRotator struct {
	Rotator Rotator
	Replace bool `codec:",omitempty"`
	Date    int64
}

// DeleteRotator removes a rotator no secret rotates with.
type DeleteRotator struct {
	ARN string
}

func init() {
	register(CmdRotateSecret, "RotateSecret", applyRotateSecret)
	register(CmdCancelRotation, "CancelRotation", applyCancelRotation)
	register(CmdRotationProgress, "RotationProgress", applyRotationProgress)
	register(CmdPutRotator, "PutRotator", applyPutRotator)
	register(CmdDeleteRotator, "DeleteRotator", applyDeleteRotator)
}

// errStaleRotation answers a scheduler command that lost a race (a new
// leader's, a client's change): nothing changed.
func errStaleRotation(what string) *apierr.Error {
	return apierr.New(apierr.InvalidRequest, "Nothing changed: "+what)
}

func applyRotateSecret(txn *memdb.Txn, index uint64, c *RotateSecret) any {
	s, e := writableSecret(txn, c.ARN)
	if e != nil {
		return e
	}
	rot := s.Rotation
	if rot == nil {
		rot = &Rotation{}
	}
	if c.Scheduled && (!rot.Enabled || rot.Token != "" || rot.NextStart != c.Window) {
		return errStaleRotation("the scheduled rotation is no longer due.")
	}
	res := &Result{ARN: s.ARN, Name: s.Name}
	if cfg := c.Config; cfg != nil {
		if r, err := RotatorByARN(txn, cfg.Rotator); err != nil {
			return internal(err)
		} else if r == nil {
			return apierr.New(apierr.AccessDenied, apierr.MsgCannotInvoke)
		}
		rot.Rotator, rot.External, rot.RoleARN = cfg.Rotator, cfg.External, cfg.RoleARN
		if cfg.Rules {
			rot.AfterDays, rot.Expression, rot.Duration = cfg.AfterDays, cfg.Expression, cfg.Duration
			rot.Enabled = true
			rot.NextStart, rot.NextDate = c.NextStart, c.NextDate
		}
	}
	if c.Start {
		if rot.Rotator == "" {
			return apierr.New(apierr.InvalidRequest, apierr.MsgNoRotationFunction)
		}
		again, e := s.StartsRotation(c.Token)
		if e != nil {
			return e
		}
		if again {
			res.VersionID = c.Token
			return res
		}
		v := s.Version(c.Token)
		if v == nil {
			v = &Version{VersionID: c.Token, CreatedDate: versionDate(s, c.Date), Index: index}
			s.Versions = append(s.Versions, v)
		}
		moveLabel(s, StagePending, v)
		rot.Token, rot.Step, rot.Attempts, rot.RetryAt = c.Token, "", 0, 0
		rot.LastError, rot.LastErrorDate = "", 0
		res.VersionID = c.Token
	}
	s.Rotation = rot
	if e := checkLimits(s, c.Date); e != nil {
		return e
	}
	if e := changeSecret(txn, index, s, c.Date); e != nil {
		return e
	}
	return res
}

// StartsRotation checks whether a rotation with version token may start
// on the secret: again reports a retry of the rotation in flight (which
// answers as the first request did); an error says why it may not. The
// server checks it before the command enters the log, the FSM again.
func (s *Secret) StartsRotation(token string) (again bool, err *apierr.Error) {
	if !slices.ContainsFunc(s.Versions, (*Version).HasValue) {
		return false, apierr.New(apierr.InvalidRequest, apierr.MsgRotateNoValue)
	}
	inFlight := ""
	if s.Rotation != nil {
		inFlight = s.Rotation.Token
	}
	if inFlight != "" && inFlight == token {
		return true, nil
	}
	pending := s.Staged(StagePending)
	if inFlight != "" || (pending != nil && !slices.Contains(pending.Stages, StageCurrent) && pending.VersionID != token) {
		return false, apierr.New(apierr.InvalidRequest, apierr.MsgRotationInProgress)
	}
	if v := s.Version(token); v != nil && v != pending {
		return false, errTokenInUse(token, s.ARN)
	}
	return false, nil
}

func applyCancelRotation(txn *memdb.Txn, index uint64, c *CancelRotation) any {
	s, e := writableSecret(txn, c.ARN)
	if e != nil {
		return e
	}
	rot := s.Rotation
	if rot == nil {
		return apierr.New(apierr.InvalidRequest, apierr.MsgCancelRotateNothing)
	}
	res := &Result{ARN: s.ARN, Name: s.Name, VersionID: rot.Token}
	rot.Enabled, rot.NextStart, rot.NextDate = false, 0, 0
	rot.Token, rot.Step, rot.Attempts, rot.RetryAt = "", "", 0, 0
	if e := changeSecret(txn, index, s, c.Date); e != nil {
		return e
	}
	return res
}

func applyRotationProgress(txn *memdb.Txn, index uint64, c *RotationProgress) any {
	s, e := secretByARN(txn, c.ARN)
	if e != nil {
		return e
	}
	rot := s.Rotation
	if rot == nil || rot.Token == "" || rot.Token != c.Token || rot.Step != c.Step {
		return errStaleRotation("the rotation is no longer at this step.")
	}
	res := &Result{ARN: s.ARN, Name: s.Name, VersionID: c.Token}
	switch {
	case c.Abandon:
		rot.Token, rot.Step, rot.Attempts, rot.RetryAt = "", "", 0, 0
		rot.LastError, rot.LastErrorDate = c.Error, c.Date
	case c.Error != "":
		rot.Step = ""
		rot.Attempts++
		rot.LastError, rot.LastErrorDate, rot.RetryAt = c.Error, c.Date, c.RetryAt
	case c.Done:
		v := s.Version(c.Token)
		if v == nil || !slices.Contains(v.Stages, StageCurrent) {
			return apierr.Newf(apierr.InvalidRequest, "Nothing changed: version %s is not AWSCURRENT, so the rotation has not finished.", c.Token)
		}
		// As AWS leaves it: AWSCURRENT on the new version, no AWSPENDING.
		v.Stages = removeLabel(v.Stages, StagePending)
		rot.Token, rot.Step, rot.Attempts, rot.RetryAt = "", "", 0, 0
		rot.LastError, rot.LastErrorDate = "", 0
		rot.LastRotatedDate = c.Date
		if rot.Enabled {
			rot.NextStart, rot.NextDate = c.NextStart, c.NextDate
		}
		if e := changeSecret(txn, index, s, c.Date); e != nil {
			return e
		}
		return res
	default:
		rot.Step = c.Next
	}
	// Progress is not a change of the secret a client made: the change
	// feed carries it, LastChangedDate stays.
	if e := putSecret(txn, index, s); e != nil {
		return e
	}
	return res
}

func applyPutRotator(txn *memdb.Txn, index uint64, c *PutRotator) any {
	r := c.Rotator
	old, err := RotatorByName(txn, r.Name)
	if err != nil {
		return internal(err)
	}
	switch {
	case old != nil && !c.Replace:
		return apierr.Newf(apierr.ResourceExists, "A rotator named %s already exists (%s).", r.Name, old.ARN)
	case old == nil && c.Replace:
		return apierr.Newf(apierr.ResourceNotFound, "Coffer can't find a rotator named %s.", r.Name)
	case old != nil:
		r.CreatedDate = old.CreatedDate
	default:
		r.CreatedDate = c.Date
	}
	r.ModifyIndex = index
	if err := txn.Insert(tableRotators, &r); err != nil {
		return internal(err)
	}
	return &Result{ARN: r.ARN, Name: r.Name}
}

func applyDeleteRotator(txn *memdb.Txn, index uint64, c *DeleteRotator) any {
	r, err := RotatorByARN(txn, c.ARN)
	if err != nil {
		return internal(err)
	}
	if r == nil {
		return apierr.Newf(apierr.ResourceNotFound, "Coffer can't find the rotator %s.", c.ARN)
	}
	secrets, err := RotatingSecrets(txn)
	if err != nil {
		return internal(err)
	}
	var users []string
	for _, s := range secrets {
		if s.Rotation.Rotator == r.ARN {
			users = append(users, s.Name)
		}
	}
	if len(users) > 0 {
		return apierr.Newf(apierr.InvalidRequest,
			"Rotator %s rotates %d secret(s) (%s first): cancel their rotation (CancelRotateSecret) or point them at another rotator before deleting it.",
			r.Name, len(users), users[0])
	}
	if err := txn.Delete(tableRotators, r); err != nil {
		return internal(err)
	}
	return &Result{ARN: r.ARN, Name: r.Name}
}
