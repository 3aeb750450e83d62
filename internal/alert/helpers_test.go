package alert

import (
	"testing"

	"github.com/remedy-run/remedy/policies"
)

func loadSet(t testing.TB, src string) *policies.Set {
	t.Helper()
	set, err := policies.ParseFiles([]string{"test.yaml"}, map[string][]byte{"test.yaml": []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	return set
}
