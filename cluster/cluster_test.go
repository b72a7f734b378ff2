package cluster

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// A forwarded reply carries the result or the typed error unchanged: the
// code and the outcome survive the trip, nothing is parsed from a string.
func TestRPCResponse_CarriesTypedErrors(t *testing.T) {
	cases := []struct {
		name  string
		res   *fsm.Result
		err   error
		check func(t *testing.T, res *fsm.Result, err error)
	}{
		{"result", &fsm.Result{ARN: "a", VersionID: "v"}, nil, func(t *testing.T, res *fsm.Result, err error) {
			if err != nil || res.ARN != "a" || res.VersionID != "v" {
				t.Fatalf("got %+v, %v", res, err)
			}
		}},
		{"aws error", nil, apierr.New(apierr.ResourceExists, "taken"), func(t *testing.T, _ *fsm.Result, err error) {
			if e, ok := apierr.As(err); !ok || e.Code != apierr.ResourceExists || e.Message != "taken" {
				t.Fatalf("got %v", err)
			}
		}},
		{"unknown outcome", nil, unavailable("leadership lost", OutcomeUnknown), func(t *testing.T, _ *fsm.Result, err error) {
			var ue *UnavailableError
			if !errors.As(err, &ue) || ue.Outcome != OutcomeUnknown {
				t.Fatalf("got %v", err)
			}
		}},
		{"not leader", nil, errNotLeader, func(t *testing.T, _ *fsm.Result, err error) {
			if !errors.Is(err, errNotLeader) {
				t.Fatalf("got %v", err)
			}
		}},
		{"plain error is unknown", nil, errors.New("boom"), func(t *testing.T, _ *fsm.Result, err error) {
			var ue *UnavailableError
			if !errors.As(err, &ue) || ue.Outcome != OutcomeUnknown {
				t.Fatalf("got %v", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Through the wire encoding too, as a follower receives it.
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			client, server := newRPCConn(c1), newRPCConn(c2)
			go func() {
				server.enc.Encode(toResponse(tc.res, 7, tc.err))
				server.w.Flush()
			}()
			var resp rpcResponse
			if err := client.dec.Decode(&resp); err != nil {
				t.Fatal(err)
			}
			res, _, err := fromResponse(&resp)
			tc.check(t, res, err)
		})
	}
}

// The cluster port hands each connection to Raft or to the RPC server by
// its first byte, and drops anything else.
func TestMux_RoutesByFirstByte(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newMux(ln, ln.Addr(), nil, "us-east-1", hclog.NewNullLogger())
	rpcSeen := make(chan net.Conn, 1)
	m.rpc = func(c net.Conn) { rpcSeen <- c }
	go m.serve()
	defer m.close()

	rc, err := m.dial(ln.Addr().String(), muxRPC, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	select {
	case c := <-rpcSeen:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("RPC connection not routed")
	}

	layer := raftLayer{m}
	raftConn, err := layer.Dial(raft.ServerAddress("127.0.0.1:"+portOf(ln)), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raftConn.Close()
	accepted, err := layer.Accept()
	if err != nil {
		t.Fatal(err)
	}
	accepted.Close()

	junk, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	junk.Write([]byte{'X'})
	junk.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := junk.Read(make([]byte, 1)); err == nil {
		t.Fatal("unknown connection type was not closed")
	}
	junk.Close()
}

func portOf(ln net.Listener) string {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

func TestConfig_Validate(t *testing.T) {
	good := DefaultConfig()
	good.NodeID, good.Region, good.ClusterAddr, good.GossipAddr = "n1", "us-east-1", "127.0.0.1:0", "127.0.0.1:0"
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Config){
		"no node id":      func(c *Config) { c.NodeID = "" },
		"no region":       func(c *Config) { c.Region = "" },
		"lease too long":  func(c *Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout },
		"negative expect": func(c *Config) { c.BootstrapExpect = -1 },
	} {
		c := good
		mutate(&c)
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
