package check

import (
	"testing"
	"time"
)

func TestTimeToElect(t *testing.T) {
	ms := func(x int64) int64 { return x * int64(time.Millisecond) }
	smp := func(at int64, node, state string, term uint64) Sample {
		return Sample{Time: ms(at), Node: node, State: state, Term: term}
	}
	f := Files{
		Events: []Event{
			{Time: ms(1000), Phase: "start", Fault: "kill-leader", Node: "n1"},
			{Time: ms(3000), Phase: "stop", Fault: "kill-leader", Node: "n1"},
			{Time: ms(5000), Phase: "start", Fault: "kill", Node: "n3"}, // a follower
			{Time: ms(6000), Phase: "stop", Fault: "kill", Node: "n3"},
			{Time: ms(7000), Phase: "start", Fault: "partition"},
			{Time: ms(9000), Phase: "stop", Fault: "partition"},
			{Time: ms(9200), Phase: "start", Fault: "kill", Node: "n1"}, // a follower by now
		},
		Samples: []Sample{
			smp(900, "n1", "leader", 2), smp(900, "n2", "follower", 2),
			{Time: ms(1100), Node: "n1", Err: "connection refused"},
			smp(1500, "n2", "candidate", 3),
			smp(2100, "n1", "leader", 2), // a stale answer of the old leader: not a new one
			smp(2600, "n2", "leader", 3), // elected 1.6 s after the kill
			smp(4900, "n2", "leader", 3),
			smp(5500, "n2", "leader", 3),
			smp(6900, "n2", "leader", 3),
			smp(8000, "n2", "leader", 3), // the partition left n2 leading: no election
			smp(9500, "n3", "leader", 4), // after the next fault window: not counted
		},
	}
	ws := TimeToElect(f)
	if len(ws) != 2 {
		t.Fatalf("windows %+v", ws)
	}
	if !ws[0].Recovered || ws[0].Window != 1600*time.Millisecond || ws[0].Fault != "kill-leader" {
		t.Fatalf("kill-leader: %+v", ws[0])
	}
	if ws[1].Recovered || ws[1].Fault != "partition" {
		t.Fatalf("partition: %+v", ws[1])
	}
	if TimeToElect(Files{Events: f.Events}) != nil {
		t.Fatal("no samples must give no windows")
	}
}
