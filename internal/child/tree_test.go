package child

import (
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
)

// Tree holds the leader, the members of its group and their descendants, and nothing
// else: a shell in its own group with a child and a grandchild.
func TestTreeHoldsTheGroupAndItsDescendants(t *testing.T) {
	cmd := exec.Command("sh", "-c", `sleep 30 & sh -c 'sleep 30; :' & wait`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() { _ = syscall.Kill(-pid, syscall.SIGKILL); _ = cmd.Wait() }()
	var tree []int
	for range 1000 { // the shell starts its children after we return from Start
		if tree = Tree(pid, pid); len(tree) >= 4 {
			break
		}
		_, _ = os.ReadFile("/proc/self/stat") // yield to the shell without a timed sleep
	}
	if len(tree) < 4 || !slices.Contains(tree, pid) {
		t.Fatalf("tree of %d: %v, want the shell, two sleeps and the inner shell", pid, tree)
	}
	if slices.Contains(tree, os.Getpid()) {
		t.Fatalf("the tree holds the test itself: %v", tree)
	}
}

// BenchmarkTree: one look at a service's tree (one pass over /proc), as each health
// check with max_memory_mb makes.
func BenchmarkTree(b *testing.B) {
	pid := os.Getpid()
	for b.Loop() {
		Tree(pid, pid)
	}
}
