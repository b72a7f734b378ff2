package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/raft"
)

// watchLeadership turns raft's NotifyCh into a leader session: a context
// that lives while this node leads. NotifyCh is used rather than LeaderCh
// because LeaderCh may drop transitions.
func (n *Node) watchLeadership(notify <-chan bool) {
	defer n.wg.Done()
	type session struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var cur *session
	end := func() {
		if cur != nil {
			cur.cancel()
			<-cur.done
			cur = nil
		}
		n.readyTerm.Store(0)
	}
	defer end()
	start := func() {
		ctx, cancel := context.WithCancel(n.shutdownCtx)
		cur = &session{cancel: cancel, done: make(chan struct{})}
		go func(done chan struct{}) {
			defer close(done)
			n.leadership(ctx)
		}(cur.done)
	}
	for {
		select {
		case isLeader := <-notify:
			end()
			if isLeader {
				start()
			}
		case <-n.relead:
			// A restore replaced the state under this term's leader work:
			// end it and, if still leading, start again (a barrier and a
			// no-op first, as for a new term) on the restored state.
			if cur != nil {
				end()
				if n.IsLeader() {
					n.logger.Info("restarting leader work on the restored state")
					start()
				}
			}
		case <-n.shutdownCtx.Done():
			return
		}
	}
}

// leadership is Consul's establishLeadership: a barrier so the FSM holds
// every entry of earlier terms, then a Noop of our own so the commit index
// is one of this term (the read-index precondition), then leader-only work.
func (n *Node) leadership(ctx context.Context) {
	term := n.raft.CurrentTerm()
	n.logger.Info("leadership acquired", "term", term)
	defer n.logger.Info("leadership lost", "term", term)
	for {
		err := n.establish(ctx, term)
		if err == nil {
			break
		}
		n.logger.Warn("establishing leadership failed; retrying", "term", term, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	n.readyTerm.Store(term)
	n.logger.Info("leadership established; serving reads", "term", term)
	// The dead-server cleanup is leader work too, fenced the same way: the
	// session waits for it, so two terms' cleanups never overlap here.
	cleanup := make(chan struct{})
	go func() {
		defer close(cleanup)
		n.removeDeadServers(ctx)
	}()
	defer func() { <-cleanup }()
	if n.cfg.OnLeader != nil {
		// Fenced: leader work runs in this session, and watchLeadership
		// waits for the session to end before it starts the next one. So
		// one term's work has returned before the next term's starts, on
		// this node: two schedulers or shippers never run at once here.
		n.cfg.OnLeader(ctx)
	}
	<-ctx.Done()
}

func (n *Node) establish(ctx context.Context, term uint64) error {
	if err := n.await(n.raft.Barrier(n.cfg.RequestTimeout)); err != nil {
		return err
	}
	cmd, err := fsm.Encode(fsm.CmdNoop, &fsm.Noop{Term: term})
	if err != nil {
		return err
	}
	_, _, err = n.applyLocal(ctx, cmd)
	return err
}

// readBatcher lets concurrent reads share one leadership check: a read
// joins the next round; a round captures the commit index after every read
// in it arrived, then confirms leadership with one VerifyLeader (one
// heartbeat round), as etcd batches ReadIndex.
type readBatcher struct {
	mu      sync.Mutex
	waiting []chan readResult
	running bool
}

type readResult struct {
	index uint64
	err   error
}

func (n *Node) leaderReadIndex(ctx context.Context) (uint64, error) {
	ch := make(chan readResult, 1)
	b := &n.reads
	b.mu.Lock()
	b.waiting = append(b.waiting, ch)
	if !b.running {
		b.running = true
		go n.readRounds()
	}
	b.mu.Unlock()
	select {
	case r := <-ch:
		return r.index, r.err
	case <-ctx.Done():
		return 0, unavailable("leadership could not be confirmed before the request timed out", OutcomeNotApplied)
	}
}

func (n *Node) readRounds() {
	b := &n.reads
	for {
		b.mu.Lock()
		batch := b.waiting
		b.waiting = nil
		if len(batch) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		start := time.Now()
		index, err := n.confirmLeadership()
		n.metricReadRound(start, len(batch))
		for _, ch := range batch {
			ch <- readResult{index, err}
		}
	}
}

// confirmLeadership returns a commit index that is safe to read at: this
// node led in one term throughout, had committed its own Noop in that term,
// and a quorum acknowledged it as leader after the index was taken.
func (n *Node) confirmLeadership() (uint64, error) {
	term := n.raft.CurrentTerm()
	if n.raft.State() != raft.Leader || n.readyTerm.Load() != term {
		return 0, errNotLeader
	}
	index := n.raft.CommitIndex()
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return 0, errNotLeader
	}
	if n.raft.CurrentTerm() != term {
		return 0, errNotLeader
	}
	return index, nil
}
