package replication

import (
	"time"

	"github.com/hashicorp/go-hclog"
)

// JoinHosted joins regions that one process hosts (coffer dev, tests)
// through a WAN pool on loopback, one member per region, each joined to
// the first, and gives every service the pool's members: they replicate
// with the same code as servers. apiAddr is the API address the members
// publish (read at each refresh, so it may be set once the API listens).
// Call it once the regions serve (they publish their keys then); it
// returns once every member knows every region, or after 10 seconds.
// leave takes every member out of the pool.
func JoinHosted(services []*Service, apiAddr func() string, logger hclog.Logger) (members func() []Node, leave func(), err error) {
	var pools []*Pool
	leave = func() {
		for _, p := range pools {
			p.Leave(time.Second)
		}
		pools = nil
	}
	for _, s := range services {
		var join []string
		if len(pools) > 0 {
			join = []string{pools[0].Addr()}
		}
		r := s.r
		p, err := StartPool(PoolConfig{BindAddr: "127.0.0.1:0", Join: join, Local: true,
			Logger: logger.With("region", r.Name()).Named("wan"),
			Self:   func() Node { return Self(r, apiAddr()) }})
		if err != nil {
			leave()
			return nil, nil, err
		}
		pools = append(pools, p)
		s.SetPeers(p.Members)
	}
	if len(pools) == 0 {
		return func() []Node { return nil }, leave, nil
	}
	// Answer once every member knows every region and its key, so the
	// first replicated write ships at once.
	deadline := time.Now().Add(10 * time.Second)
	for !allKnown(pools, len(services)) {
		if time.Now().After(deadline) {
			logger.Warn("the hosted regions do not all know each other yet; replication starts when they do")
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return pools[0].Members, leave, nil
}

func allKnown(pools []*Pool, regions int) bool {
	for _, p := range pools {
		keys := 0
		for _, n := range p.Members() {
			if n.PublicKey != nil && n.ClusterAddr != "" {
				keys++
			}
		}
		if keys < regions {
			return false
		}
	}
	return true
}
