package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// mount(8) runs pictofs as a mount helper in one of two ways (util-linux
// with fuse3, as on Debian):
//
//	/sbin/mount.fuse.pictofs SOURCE MOUNTPOINT [-sfnv] [-o OPTIONS]   (a symlink to pictofs)
//	pictofs SOURCE MOUNTPOINT -o OPTIONS                             (mount.fuse3, for type fuse.pictofs)
//
// helperArgs recognises both and rewrites them into `pictofs mount --daemon
// --flag=value … MOUNTPOINT`, so a helper mount goes through the same flags
// and checks as the command line. SOURCE is the API base URL when it starts
// with http:// or https://; anything else (e.g. "pictofs") is a label.

// helperIgnored are options meant for mount(8), systemd or the kernel that
// change nothing for pictofs: its mounts are always nodev and nosuid (so dev
// and suid, which mount.fuse3 passes by default, have no effect), files are
// never executable, and times come from the server.
var helperIgnored = []string{
	"rw", "defaults", "auto", "noauto", "_netdev", "user", "users", "nouser", "owner", "group", "nofail",
	"nodev", "nosuid", "dev", "suid", "noexec", "exec", "async", "sync", "dirsync",
	"atime", "noatime", "relatime", "norelatime", "strictatime", "nostrictatime", "lazytime", "nolazytime", "diratime", "nodiratime",
}

// helperRefused are options pictofs cannot honour.
var helperRefused = map[string]string{
	"api_key": "a key in /etc/fstab is readable by every user: put it in a 0600 file and use api_key_file=PATH",
	"daemon":  "a helper mount is always a daemon",
}

// isHelperCall reports whether argv is a mount helper invocation: pictofs
// called as mount.*, or with SOURCE MOUNTPOINT -o OPTIONS where SOURCE is
// not a command (mount.fuse3 always passes -o).
func isHelperCall(argv []string, app *cli.App) bool {
	if strings.HasPrefix(filepath.Base(argv[0]), "mount.") {
		return true
	}
	if !slices.Contains(argv, "-o") {
		return false
	}
	var positional []string
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		switch {
		case a == "-o" || a == "-t":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			positional = append(positional, a)
		}
	}
	if len(positional) != 2 || strings.HasPrefix(argv[1], "-") {
		return false
	}
	return app.Command(argv[1]) == nil && argv[1] != "help"
}

// helperArgs turns a helper invocation into pictofs's own command line.
// fake is set for -f (mount(8)'s "do everything but mount").
func helperArgs(argv []string, mountFlagSet []cli.Flag) (args []string, fake bool, err error) {
	var positional, opts []string
	sloppy := false
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		switch {
		case a == "-o":
			if i+1 >= len(argv) {
				return nil, false, fmt.Errorf("mount helper: -o needs a value")
			}
			i++
			opts = append(opts, strings.Split(argv[i], ",")...)
		case strings.HasPrefix(a, "-o"):
			opts = append(opts, strings.Split(a[2:], ",")...)
		case a == "-t":
			i++ // the type, fuse.pictofs
		case a == "-s":
			sloppy = true
		case a == "-f":
			fake = true
		case a == "-n", a == "-v":
		case strings.HasPrefix(a, "-"):
			return nil, false, fmt.Errorf("mount helper: unknown argument %q", a)
		default:
			positional = append(positional, a)
		}
	}
	if len(positional) != 2 {
		return nil, false, fmt.Errorf("mount helper: want SOURCE MOUNTPOINT [-o OPTIONS], got %q", strings.Join(argv[1:], " "))
	}
	source, mountpoint := positional[0], positional[1]
	args = []string{"pictofs", "mount", "--daemon"}
	if strings.HasPrefix(source, "http://") || strings.HasPrefix(source, "https://") {
		args = append(args, "--api-url="+source)
	}
	known := helperOptionNames(mountFlagSet)
	for _, o := range opts {
		o = strings.TrimSpace(o)
		name, value, hasValue := strings.Cut(o, "=")
		switch {
		case o == "":
		case o == "ro":
			args = append(args, "--read-only")
		case slices.Contains(helperIgnored, o), strings.HasPrefix(o, "x-"), strings.HasPrefix(o, "comment="):
		case helperRefused[name] != "":
			return nil, false, fmt.Errorf("mount option %q: %s", name, helperRefused[name])
		case known[name] != nil:
			flag := "--" + strings.ReplaceAll(name, "_", "-")
			if _, isBool := known[name].(*cli.BoolFlag); isBool && !hasValue {
				args = append(args, flag)
			} else if !hasValue {
				return nil, false, fmt.Errorf("mount option %q needs a value (%s=…)", name, name)
			} else {
				args = append(args, flag+"="+value)
			}
		case sloppy:
		default:
			names := make([]string, 0, len(known))
			for n := range known {
				names = append(names, n)
			}
			slices.Sort(names)
			return nil, false, fmt.Errorf("unknown mount option %q; pictofs takes %s, and ro, rw and the usual mount(8) options", name, strings.Join(names, ", "))
		}
	}
	return append(args, mountpoint), fake, nil
}

// helperOptionNames maps option names (flag names with _ for -) to the
// mount flags a helper may set.
func helperOptionNames(flags []cli.Flag) map[string]cli.Flag {
	out := map[string]cli.Flag{}
	for _, f := range flags {
		name := f.Names()[0]
		if helperRefused[strings.ReplaceAll(name, "-", "_")] != "" {
			continue
		}
		out[strings.ReplaceAll(name, "-", "_")] = f
	}
	return out
}
