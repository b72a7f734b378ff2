package server_test

import (
	"net/http"
	"testing"

	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server/servertest"
)

func healthCode(t *testing.T, endpoint, path string) int {
	t.Helper()
	resp, err := http.Get(endpoint + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The health variants on a 3-node cluster: every node is ready and live;
// only the leader is active, the others answer 429 (serving standbys).
func TestCluster_HealthVariants(t *testing.T) {
	c := servertest.New(t, 3)
	leader := c.Leader()
	for i, n := range c.Nodes {
		want := map[string]int{"/v1/health": 200, "/v1/health/ready": 200, "/v1/health/live": 200, "/v1/health/active": 429}
		if i == leader {
			want["/v1/health/active"] = 200
		}
		for path, code := range want {
			if got := healthCode(t, n.Endpoint, path); got != code {
				t.Errorf("%s %s: %d, want %d", n.ID, path, got, code)
			}
		}
	}
}

// A sealed node is live (an orchestrator must not restart it while it
// waits for its shares) but neither ready nor active.
func TestAPI_SealedNodeIsLiveNotReady(t *testing.T) {
	l := servertest.NewLocal(t, func(c *region.Config) { c.RootKey = nil })
	for path, code := range map[string]int{"/v1/health": 503, "/v1/health/ready": 503, "/v1/health/active": 503, "/v1/health/live": 200} {
		if got := healthCode(t, l.Endpoint, path); got != code {
			t.Errorf("%s: %d, want %d", path, got, code)
		}
	}
}
