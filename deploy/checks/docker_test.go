package checks

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// parseDockerfile parses deploy/docker/Dockerfile with BuildKit's own
// parser and typed instructions, with every lint rule BuildKit applies
// on `docker build` (experimental ones too) turned into a test failure.
func parseDockerfile(t *testing.T) []instructions.Stage {
	t.Helper()
	f, err := os.Open(repo("deploy", "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: parser warning: %s", w.Short)
	}
	lint := linter.New(&linter.Config{ExperimentalAll: true,
		Warn: func(rule, desc, url, msg string, loc []parser.Range) {
			line := 0
			if len(loc) > 0 {
				line = loc[0].Start.Line
			}
			t.Errorf("Dockerfile:%d: lint %s: %s", line, rule, msg)
		}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%d stages: want a build stage and a runtime stage", len(stages))
	}
	final := stages[len(stages)-1]
	if final.BaseName != "gcr.io/distroless/static-debian12:nonroot" && final.BaseName != "scratch" {
		t.Errorf("runtime stage FROM %s: want distroless static (nonroot) or scratch", final.BaseName)
	}
	names := map[string]bool{}
	for i, s := range stages[:len(stages)-1] {
		if s.Name == "" {
			t.Errorf("stage %d: name it (FROM ... AS name) for COPY --from", i)
		}
		names[s.Name] = true
	}

	// The build: a static binary of ./cmd/coffer.
	var build []string
	env := map[string]string{}
	for _, s := range stages[:len(stages)-1] {
		for _, c := range s.Commands {
			switch c := c.(type) {
			case *instructions.RunCommand:
				build = append(build, strings.Join(c.CmdLine, " "))
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					env[kv.Key] = kv.Value
				}
			}
		}
	}
	var goBuild string
	for _, r := range build {
		if strings.Contains(r, "go build") {
			goBuild = r
		}
	}
	if !strings.Contains(goBuild, "./cmd/coffer") {
		t.Fatalf("no RUN go build ... ./cmd/coffer in the build stage (RUN: %q)", build)
	}
	if env["CGO_ENABLED"] != "0" && !strings.Contains(goBuild, "CGO_ENABLED=0") {
		t.Error("the binary must be static: CGO_ENABLED=0")
	}
	if !strings.Contains(goBuild, "main.version=") {
		t.Error("go build must stamp main.version (as the Makefile does)")
	}

	// The Go of the build stage is the module's.
	goMod := readFile(t, "go.mod")
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(goMod)
	argGo := ""
	if m := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)`).FindStringSubmatch(readFile(t, "deploy", "docker", "Dockerfile")); m != nil {
		argGo = m[1]
	}
	if goLine == nil || !strings.HasPrefix(argGo, goLine[1]) {
		t.Errorf("ARG GO_VERSION=%s does not build go.mod's Go %v", argGo, goLine)
	}

	// The runtime stage: the binary, non-root, its entrypoint, health
	// check, ports and data volume.
	var (
		user, binary  string
		entrypoint    []string
		health        []string
		exposed       []string
		volumes       []string
		dataOwnedByMe bool
		runtimeEnv    = map[string]string{}
	)
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.CopyCommand:
			if c.From != "" && !names[c.From] {
				t.Errorf("COPY --from=%s: no such stage", c.From)
			}
			if slices.Contains(c.SourcePaths, "/out/coffer") {
				binary = c.DestPath
			}
			if c.DestPath == "/var/lib/coffer" && strings.HasPrefix(c.Chown, "65532") {
				dataOwnedByMe = true
			}
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Error("ENTRYPOINT in shell form: distroless has no shell")
			}
			entrypoint = c.CmdLine
		case *instructions.CmdCommand:
			if c.PrependShell {
				t.Error("CMD in shell form: distroless has no shell")
			}
		case *instructions.HealthCheckCommand:
			health = c.Health.Test
		case *instructions.ExposeCommand:
			exposed = append(exposed, c.Ports...)
		case *instructions.VolumeCommand:
			volumes = append(volumes, c.Volumes...)
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				runtimeEnv[kv.Key] = kv.Value
			}
		case *instructions.RunCommand:
			t.Error("RUN in the runtime stage: distroless has no shell")
		}
	}
	if user == "" || user == "root" || user == "0" || strings.HasPrefix(user, "0:") || strings.HasPrefix(user, "root:") {
		t.Errorf("USER %q: the image must run as non-root", user)
	}
	if u, _, _ := strings.Cut(user, ":"); u != "65532" && u != "nonroot" {
		t.Errorf("USER %q: want distroless's nonroot (65532), which the compose and Kubernetes files assume", user)
	}
	if binary == "" {
		t.Fatal("the runtime stage does not COPY the binary /out/coffer")
	}
	if !slices.Equal(entrypoint, []string{binary}) {
		t.Errorf("ENTRYPOINT %v, want [%s]", entrypoint, binary)
	}
	// The health check is the binary's own, the one compose runs.
	if len(health) < 2 || health[0] != "CMD" || health[1] != binary {
		t.Errorf("HEALTHCHECK %v: want exec form running %s", health, binary)
	} else if want := scriptArray(t, "HEALTH"); !slices.Equal(health[1:], want) {
		t.Errorf("HEALTHCHECK runs %v; run-as-processes.sh checks %v", health[1:], want)
	}
	for _, p := range []string{"8201/tcp", "8301/tcp", "8401/tcp", "8401/udp"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE lacks %s", p)
		}
	}
	if !slices.Contains(volumes, runtimeEnv["COFFER_DATA_DIR"]) || !dataOwnedByMe {
		t.Errorf("COFFER_DATA_DIR %q must be a VOLUME created owned by 65532", runtimeEnv["COFFER_DATA_DIR"])
	}
	// The image's defaults are the ones the compose region sets.
	composeEnv, _ := envFile(t, "deploy", "compose", "coffer.env")
	for k, v := range runtimeEnv {
		if cv, ok := composeEnv[k]; ok && cv != v {
			t.Errorf("ENV %s=%s, but coffer.env says %s", k, v, cv)
		}
	}
	checkEnvKeys(t, "Dockerfile ENV", slices.Collect(func(yield func(string) bool) {
		for k := range runtimeEnv {
			if !yield(k) {
				return
			}
		}
	}))
}

// TestDockerignore: the build context keeps every file `go build
// ./cmd/coffer` reads, and leaves out the repository's history and
// binaries.
func TestDockerignore(t *testing.T) {
	f, err := os.Open(repo(".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(rel string) bool {
		ok, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, rel := range []string{".git", "bin/coffer"} {
		if !excluded(rel) {
			t.Errorf(".dockerignore keeps %s in the build context", rel)
		}
	}
	root, err := filepath.Abs(repo())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if not .Standard}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}`, "./cmd/coffer")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list ./cmd/coffer: %v\n%s", err, out)
	}
	n := 0
	for _, file := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, file)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a module of the cache, not the context
		}
		n++
		if excluded(rel) {
			t.Errorf(".dockerignore leaves out %s, which go build ./cmd/coffer needs", rel)
		}
	}
	if n == 0 {
		t.Fatal("go list found no file of the module")
	}
	for _, rel := range []string{"go.mod", "go.sum"} {
		if excluded(rel) {
			t.Errorf(".dockerignore leaves out %s", rel)
		}
	}
}
