package replication

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-hclog"
)

// Host is what replication needs of the region it serves: *region.Region.
type Host interface {
	Hosted
	AccountID() string
	Now() time.Time
	FSM() *fsm.FSM
	Keyring() (*crypto.Keyring, error)
	Apply(ctx context.Context, t fsm.CommandType, cmd any) (*fsm.Result, uint64, error)
	ResolveKey(ctx context.Context, given string) (*fsm.Key, error)
	IsLeader() bool
	Node() *cluster.Node
	RegisterLeaderWork(name string, work func(ctx context.Context))
	OnPromote(f func(primaryRegion, arn string))
}

// Config configures a region's replication.
type Config struct {
	Region Host
	Logger hclog.Logger
	// Timeout bounds one shipment's round trip (default 30 seconds).
	Timeout time.Duration
	// Batch is how many changes a shipment carries at most (default 256).
	Batch int
	// Gate, if set, is asked before every connection to a server of
	// another region and refuses it with an error: how in-process tests
	// cut the link between regions (servertest.WAN.Cut).
	Gate func(region string) error
}

// Service is one server's part in replication: on the primary region's
// leader, a shipper per replica region; on every server, the receiver of
// shipments (a follower relays them to its leader).
type Service struct {
	cfg    Config
	r      Host
	logger hclog.Logger
	peers  atomic.Pointer[func() []Node]
}

// New makes a region's replication service and registers its shippers as
// leader work: call it between region.New and Start, then Serve once the
// region has started, and SetPeers once the WAN pool has.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Batch == 0 {
		cfg.Batch = 256
	}
	s := &Service{cfg: cfg, r: cfg.Region, logger: cfg.Logger}
	cfg.Region.RegisterLeaderWork("replication", s.ship)
	cfg.Region.OnPromote(s.notifyPromoted)
	return s
}

// SetPeers gives the service the servers of every region (the WAN pool's
// Members).
func (s *Service) SetPeers(members func() []Node) { s.peers.Store(&members) }

// Serve starts receiving shipments on the region's cluster port.
func (s *Service) Serve() {
	if n := s.r.Node(); n != nil {
		n.HandleReplication(s.serveConn)
	}
}

func (s *Service) members() []Node {
	if p := s.peers.Load(); p != nil {
		return (*p)()
	}
	return nil
}

// KnownRegion reports whether a region other than this one is in the WAN
// pool (a replica region must be).
func (s *Service) KnownRegion(name string) bool {
	for _, n := range s.members() {
		if n.Region == name {
			return true
		}
	}
	return false
}

// dial opens a replication connection to a server of region: its leader
// if the pool names one, else any server that serves, else any.
func (s *Service) dial(region string) (net.Conn, Node, error) {
	node := s.r.Node()
	if node == nil {
		return nil, Node{}, errors.New("this region runs without a cluster port")
	}
	if s.cfg.Gate != nil {
		if err := s.cfg.Gate(region); err != nil {
			return nil, Node{}, err
		}
	}
	var cands []Node
	for _, n := range s.members() {
		if n.Region != region || n.ClusterAddr == "" {
			continue
		}
		if n.Leader {
			cands = append([]Node{n}, cands...)
		} else {
			cands = append(cands, n)
		}
	}
	if len(cands) == 0 {
		return nil, Node{}, fmt.Errorf("no server of region %s is in the WAN pool", region)
	}
	var errs []error
	for _, n := range cands {
		conn, err := node.DialReplication(n.ClusterAddr, region, 5*time.Second)
		if err == nil {
			return conn, n, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
	}
	return nil, Node{}, fmt.Errorf("cannot reach region %s: %w", region, errors.Join(errs...))
}

// publicKey is region's replication public key as its servers publish it.
func (s *Service) publicKey(region string) ([]byte, error) {
	var key []byte
	for _, n := range s.members() {
		if n.Region == region && n.PublicKey != nil {
			if n.Leader || key == nil {
				key = n.PublicKey
			}
		}
	}
	if key == nil {
		return nil, fmt.Errorf("region %s publishes no replication public key yet", region)
	}
	return key, nil
}

// roundTrip sends one shipment to a server of its target region and
// returns the answer.
func (s *Service) roundTrip(ctx context.Context, sh *shipment) (*answer, error) {
	conn, _, err := s.dial(sh.Target)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	a, err := exchangeRaw(ctx, conn, sh, s.cfg.Timeout)
	if err != nil {
		return nil, err
	}
	if a.Error != "" {
		return nil, fmt.Errorf("region %s refused the shipment: %s", sh.Target, a.Error)
	}
	return a, nil
}

// exchangeRaw sends a shipment on conn and reads the answer.
func exchangeRaw(ctx context.Context, conn net.Conn, sh *shipment, timeout time.Duration) (*answer, error) {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := writeFrame(conn, sh); err != nil {
		return nil, err
	}
	var a answer
	if err := readFrame(conn, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// notifyPromoted tells a primary region, in the background, that its
// secret's replica arn was promoted here, retrying for a minute; if it
// cannot be told, it learns at its next shipment of the secret.
func (s *Service) notifyPromoted(primaryRegion, arn string) {
	primaryARN, err := ReplicaARN(arn, primaryRegion)
	if err != nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sh := &shipment{Source: s.r.Name(), Target: primaryRegion, Promoted: []string{primaryARN}}
		for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
			_, err := s.roundTrip(ctx, sh)
			if err == nil {
				return
			}
			select {
			case <-ctx.Done():
				s.logger.Warn("could not tell the primary region of a promotion; it learns at its next shipment",
					"primary_region", primaryRegion, "arn", arn, "error", err)
				return
			case <-time.After(delay):
			}
		}
	}()
}
