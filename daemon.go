package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/pictofs/pictofs/fs"
)

// daemonChildCommand is the hidden command a --daemon parent starts. The
// child reads its mountConfig as JSON from fd 3 (so the key never shows in
// the process list) and reports on fd 4: "ready\n" once the mount serves,
// or "error: <reason>\n" when it cannot mount.
const daemonChildCommand = "daemon-child"

// Readiness messages on the daemon's pipe.
const (
	daemonReady    = "ready"
	daemonErrorTag = "error: "
)

// startDaemon starts a detached child that mounts as cfg says and returns
// once the mount is ready, or with the child's reason when it cannot mount.
func startDaemon(cfg mountConfig) error {
	if err := fs.CheckMountpoint(cfg.Mountpoint); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--daemon: cannot find this program: %w", err)
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	cfg.Daemon = false
	cmd := exec.Command(exe, daemonChildCommand)
	cmd.ExtraFiles = []*os.File{cfgR, readyW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	err = cmd.Start()
	cfgR.Close()
	readyW.Close()
	if err != nil {
		cfgW.Close()
		readyR.Close()
		return fmt.Errorf("--daemon: start %s: %w", exe, err)
	}
	encErr := json.NewEncoder(cfgW).Encode(cfg)
	cfgW.Close()
	msg, _ := io.ReadAll(io.LimitReader(readyR, 64<<10))
	readyR.Close()
	line := strings.TrimSpace(string(msg))
	switch {
	case line == daemonReady:
		return cmd.Process.Release()
	case strings.HasPrefix(line, daemonErrorTag):
		cmd.Wait()
		return errors.New(strings.TrimPrefix(line, daemonErrorTag))
	case encErr != nil:
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("--daemon: send the configuration: %w", encErr)
	}
	werr := cmd.Wait()
	return fmt.Errorf("the pictofs daemon exited before the mount was ready (%v); run without --daemon to see why", werr)
}

// daemonChild is the command the --daemon parent runs.
func daemonChild() *cli.Command {
	return &cli.Command{
		Name:   daemonChildCommand,
		Hidden: true,
		Action: func(cc *cli.Context) error {
			cfgIn := os.NewFile(3, "config")
			report := os.NewFile(4, "ready")
			if cfgIn == nil || report == nil {
				return errors.New("daemon-child is started by 'pictofs mount --daemon', not by hand")
			}
			var cfg mountConfig
			err := json.NewDecoder(cfgIn).Decode(&cfg)
			cfgIn.Close()
			if err != nil {
				fmt.Fprintf(report, "%sbad configuration from the parent: %v\n", daemonErrorTag, err)
				return err
			}
			reported := false
			err = runMount(cc.Context, cfg, func(*fs.Mounted) {
				fmt.Fprintln(report, daemonReady)
				report.Close()
				reported = true
			})
			if err != nil && !reported {
				fmt.Fprintf(report, "%s%s\n", daemonErrorTag, strings.ReplaceAll(err.Error(), "\n", " "))
				report.Close()
			}
			return err
		},
	}
}
