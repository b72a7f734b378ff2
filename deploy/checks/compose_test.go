package checks

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads deploy/compose/docker-compose.yml as `docker compose`
// does: the Compose schema, interpolation, the env files (which must
// exist), paths resolved against the file's directory.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	dir, err := filepath.Abs(repo("deploy", "compose"))
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir), cli.WithResolvedPaths(true),
		// Only what the file itself says: no COMPOSE_* or COFFER_IMAGE
		// from the environment of the test.
		cli.WithEnv([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// scriptArray is the words of NAME=(...) in run-as-processes.sh.
func scriptArray(t *testing.T, name string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `=\(([^)]*)\)`).FindStringSubmatch(readFile(t, "deploy", "compose", "run-as-processes.sh"))
	if m == nil {
		t.Fatalf("run-as-processes.sh sets no %s=(...)", name)
	}
	return strings.Fields(m[1])
}

func TestCompose(t *testing.T) {
	p := loadCompose(t)
	env, envKeys := envFile(t, "deploy", "compose", "coffer.env")
	checkEnvKeys(t, "coffer.env", envKeys)
	region := env["COFFER_REGION"]
	if region == "" {
		t.Fatal("coffer.env sets no COFFER_REGION")
	}

	names := p.ServiceNames()
	slices.Sort(names)
	if want := scriptArray(t, "NODES"); !slices.Equal(names, want) {
		t.Errorf("services %v; run-as-processes.sh boots %v", names, want)
	}
	if len(names) != 3 {
		t.Fatalf("%d services, want the three nodes of one region", len(names))
	}
	if env["COFFER_BOOTSTRAP_EXPECT"] != "3" {
		t.Errorf("COFFER_BOOTSTRAP_EXPECT=%q, want 3 (the services)", env["COFFER_BOOTSTRAP_EXPECT"])
	}
	// --join names every node at its gossip port.
	_, gossipPort, _ := strings.Cut(env["COFFER_GOSSIP_ADDR"], ":")
	var join []string
	for _, n := range names {
		join = append(join, n+":"+gossipPort)
	}
	if got := strings.Split(env["COFFER_JOIN"], ","); !slices.Equal(got, join) {
		t.Errorf("COFFER_JOIN=%v, want %v", got, join)
	}
	_, clusterPort, _ := strings.Cut(env["COFFER_CLUSTER_ADDR"], ":")
	_, apiPort, _ := strings.Cut(env["COFFER_API_ADDR"], ":")

	envFilePath, _ := filepath.Abs(repo("deploy", "compose", "coffer.env"))
	health := scriptArray(t, "HEALTH")
	for _, n := range names {
		s := p.Services[n]
		t.Run(n, func(t *testing.T) {
			if s.Build == nil || s.Image == "" {
				t.Error("needs both build (the Dockerfile) and image")
			} else if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("build: %v", err)
			}
			if len(s.EnvFiles) != 1 || s.EnvFiles[0].Path != envFilePath {
				t.Errorf("env_file %v, want coffer.env", s.EnvFiles)
			}
			if v := s.Environment["COFFER_NODE_ID"]; v == nil || *v != n {
				t.Errorf("COFFER_NODE_ID must be the service name %s", n)
			}
			if v := s.Environment["COFFER_CLUSTER_ADVERTISE"]; v == nil || *v != n+":"+clusterPort {
				t.Errorf("COFFER_CLUSTER_ADVERTISE must be %s:%s (the cluster port binds 0.0.0.0)", n, clusterPort)
			}
			var keys []string
			for k := range s.Environment {
				keys = append(keys, k)
			}
			checkEnvKeys(t, n+" environment", keys)

			hc := s.HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] != "CMD" {
				t.Fatalf("healthcheck %+v: want an exec-form CMD test", hc)
			}
			if !slices.Equal(hc.Test[1:], health) {
				t.Errorf("healthcheck runs %v; run-as-processes.sh checks %v", hc.Test[1:], health)
			}
			if hc.Interval == nil || hc.Timeout == nil || hc.StartPeriod == nil || hc.Retries == nil {
				t.Error("healthcheck: set interval, timeout, start_period and retries")
			}

			if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
				t.Error("want read_only, cap_drop [ALL] and no-new-privileges")
			}
			if s.StopSignal != "SIGTERM" || s.StopGracePeriod == nil {
				t.Error("want stop_signal SIGTERM and a stop_grace_period")
			}
			published := false
			for _, port := range s.Ports {
				if port.Target == 8201 && port.HostIP == "127.0.0.1" && apiPort == "8201" {
					published = true
				}
			}
			if !published {
				t.Errorf("the API port %s is not published on 127.0.0.1", apiPort)
			}

			// Volumes: the data directory on a named volume; every file
			// coffer.env names under /etc/coffer mounted read-only.
			mounts := map[string]types.ServiceVolumeConfig{}
			for _, v := range s.Volumes {
				mounts[v.Target] = v
			}
			data, ok := mounts[env["COFFER_DATA_DIR"]]
			if !ok || data.Type != types.VolumeTypeVolume || data.ReadOnly {
				t.Errorf("COFFER_DATA_DIR %s is not on a writable named volume", env["COFFER_DATA_DIR"])
			} else if _, declared := p.Volumes[data.Source]; !declared {
				t.Errorf("volume %s is not declared under volumes:", data.Source)
			} else if !strings.Contains(data.Source, n) {
				t.Errorf("volume %s: each node needs its own", data.Source)
			}
			for _, k := range envKeys {
				path := env[k]
				if !strings.HasPrefix(path, "/etc/coffer/") {
					continue
				}
				var m *types.ServiceVolumeConfig
				for target, v := range mounts {
					if path == target || strings.HasPrefix(path, target+"/") {
						m = &v
						break
					}
				}
				switch {
				case m == nil:
					t.Errorf("%s=%s: no volume mounts it", k, path)
				case !m.ReadOnly:
					t.Errorf("%s=%s: mounted read-write, want :ro", k, path)
				case m.Type != types.VolumeTypeBind:
					t.Errorf("%s=%s: not a bind mount of the host's material", k, path)
				}
			}
			// This node's certificate, as `coffer operator tls cert create
			// --node <service>` names it.
			for target, file := range map[string]string{
				env["COFFER_TLS_CERT_FILE"]: region + "-server-" + n + ".pem",
				env["COFFER_TLS_KEY_FILE"]:  region + "-server-" + n + "-key.pem",
			} {
				if m, ok := mounts[target]; !ok || filepath.Base(m.Source) != file {
					t.Errorf("%s must be mounted from tls/%s", target, file)
				}
			}
			for _, v := range s.Volumes {
				if strings.Contains(v.Source, "ca-key") {
					t.Errorf("%s: the CA key must stay off the servers", v.Source)
				}
			}
		})
	}
}
