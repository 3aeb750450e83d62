package child

import (
	"os"
	"strconv"
	"strings"
)

// Tree lists the running processes (zombies excluded) that belong to a service started
// as leader in its own process group pgid: every member of the group, and every
// descendant of the leader or of a member that left the group (setsid, a daemonising
// script). It is the set that systemd's cgroup of the unit would hold, read from /proc
// in one pass; the order is /proc's (ascending pids). Without /proc it returns only the
// leader when it runs.
func Tree(pgid, leader int) []int {
	dir, err := os.ReadDir("/proc")
	if err != nil {
		if Running(leader) {
			return []int{leader}
		}
		return nil
	}
	type proc struct{ ppid, pgrp int }
	procs := make(map[int]proc, len(dir))
	var order []int
	for _, e := range dir {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, pgrp, ok := statFields(pid); ok {
			procs[pid] = proc{ppid, pgrp}
			order = append(order, pid)
		}
	}
	in := make(map[int]bool, 8)
	var member func(pid int, depth int) bool
	member = func(pid int, depth int) bool {
		if v, ok := in[pid]; ok {
			return v
		}
		p, ok := procs[pid]
		if !ok || depth > 64 || pid <= 1 {
			return false
		}
		v := pid == leader || (pgid > 0 && p.pgrp == pgid) || member(p.ppid, depth+1)
		in[pid] = v
		return v
	}
	var out []int
	for _, pid := range order {
		if member(pid, 0) {
			out = append(out, pid)
		}
	}
	return out
}

// statFields reads a process's parent and group from /proc/PID/stat; ok is false when
// it is gone or a zombie.
func statFields(pid int) (ppid, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	pgrp, _ = strconv.Atoi(f[2])
	return ppid, pgrp, true
}
