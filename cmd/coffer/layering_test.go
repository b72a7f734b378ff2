package main

import (
	"os/exec"
	"strings"
	"testing"
)

// layers is DESIGN §1's order of Coffer's top-level packages, highest
// first: a package imports only packages of lower layers, or its own
// subtree (server/servertest imports server). apierr, the AWS error
// vocabulary, is shared by all and imports nothing of ours. Packages on
// one layer do not import each other (rotation and replication, acl and
// audit). A new top-level package must be placed here.
var layers = map[string]int{
	"cmd":         8,
	"jepsen":      8, // the fault-injection harness: its own main
	"server":      7,
	"rotation":    6,
	"replication": 6,
	"region":      5,
	"cluster":     4,
	"acl":         3,
	"audit":       3,
	"fsm":         2,
	"crypto":      1,
	"tlsutil":     1,
	"apierr":      0,
}

const module = "github.com/cofferhq/coffer"

// topOf is the top-level directory of one of our import paths ("" for the
// module root), and whether the path is ours.
func topOf(path string) (string, bool) {
	if path == module {
		return "", true
	}
	rest, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return "", false
	}
	top, _, _ := strings.Cut(rest, "/")
	return top, true
}

// upward returns why importing imported from importer breaks the
// layering, or "" if it does not.
func upward(importer, imported string) string {
	a, _ := topOf(importer)
	b, ours := topOf(imported)
	if !ours || a == b {
		return ""
	}
	ra, okA := layers[a]
	if !okA {
		return importer + " is in no layer of DESIGN §1 (add its top-level package to layers)"
	}
	if b == "apierr" {
		return ""
	}
	rb, okB := layers[b]
	switch {
	case !okB:
		return imported + " is in no layer of DESIGN §1 (add its top-level package to layers)"
	case rb >= ra:
		return importer + " imports " + imported + ", which is not below it in DESIGN §1's order"
	}
	return ""
}

func TestLayering_UpwardImports(t *testing.T) {
	for _, tc := range []struct {
		importer, imported string
		ok                 bool
	}{
		{module + "/server", module + "/region", true},
		{module + "/server/servertest", module + "/server", true},
		{module + "/fsm", module + "/apierr", true},
		{module + "/server", "github.com/labstack/echo/v4", true},
		{module + "/region", module + "/server", false},
		{module + "/cluster", module + "/region", false},
		{module + "/rotation", module + "/replication", false},
		{module + "/apierr", module + "/fsm", false},
		{module + "/newthing", module + "/fsm", false},
	} {
		if got := upward(tc.importer, tc.imported) == ""; got != tc.ok {
			t.Errorf("%s → %s: allowed %v, want %v", tc.importer, tc.imported, got, tc.ok)
		}
	}
}

// Every import of every package of the module, tests' included, goes
// down DESIGN §1's order (cmd > server > rotation/replication > region >
// cluster > acl/audit > fsm > crypto; apierr shared by all).
func TestLayering_NoUpwardImports(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	out, err := exec.Command(gobin, "list", "-f",
		`{{.ImportPath}}: {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`,
		module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	packages := 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("go list line %q", line)
		}
		packages++
		if top, _ := topOf(pkg); layers[top] == 0 && top != "apierr" {
			t.Errorf("%s is in no layer of DESIGN §1 (add its top-level package to layers)", pkg)
		}
		for _, imp := range strings.Fields(imports) {
			if why := upward(pkg, imp); why != "" {
				t.Error(why)
			}
		}
	}
	if packages < 8 {
		t.Fatalf("go list named %d packages; expected the whole module", packages)
	}
}
