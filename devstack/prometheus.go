package devstack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	promrules "github.com/decoupledshop/shop/deploy/prometheus"
)

// prometheusHint says how to get Prometheus when it is not installed.
const prometheusHint = "not installed: apt-get install prometheus, and the next start runs it with the shop's alert rules"

// findPrometheus returns the prometheus binary, or "" when it is not
// installed (or not wanted).
func (c *config) findPrometheus() string {
	if !c.prometheus {
		return ""
	}
	path, err := exec.LookPath("prometheus")
	if err != nil {
		return ""
	}
	return path
}

// prometheusConfig scrapes both services' admin listeners every 5 s and
// loads the rules file.
func (s *stack) prometheusConfig(rulesFile string) string {
	return fmt.Sprintf(`# Written by shopdev at every start; edits are lost.
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - %q
scrape_configs:
  - job_name: productsvc
    static_configs:
      - targets: [%q]
  - job_name: cartsvc
    static_configs:
      - targets: [%q]
`, rulesFile, s.cfg.productsAdminAddr, s.cfg.cartAdminAddr)
}

// runPrometheus runs Prometheus (binary bin) with its data under the
// stack's data directory until ctx is done.
func (s *stack) runPrometheus(ctx context.Context, bin string) error {
	dir := filepath.Join(s.cfg.dataDir, "prometheus")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return err
	}
	rules := filepath.Join(dir, "shop.rules.yml")
	if err := os.WriteFile(rules, promrules.Rules, 0o644); err != nil {
		return err
	}
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(s.prometheusConfig(rules)), 0o644); err != nil {
		return err
	}
	log, err := s.logFile("prometheus")
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=7d",
		"--web.listen-address="+s.cfg.prometheusAddr,
	)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		return fmt.Errorf("prometheus exited: %w", err)
	case <-ctx.Done():
	}
	// Stop it as Ctrl-C would, giving it time to flush its data.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	return nil
}
