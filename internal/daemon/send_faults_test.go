package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The send API under the store faults that are immediate (a full disk, a read-only
// database), with receipts arriving meanwhile: a send is answered 202 only once it is
// on disk, else 503/429 with Retry-After and the error shape; once the fault ends,
// every acknowledged message reaches WhatsApp — each chat's in the order they were
// acknowledged — and ends sent, delivered or read; receipts that could not be written
// during the fault are written after it.
func TestSendsThroughStoreFaults(t *testing.T) {
	t.Parallel()
	for _, f := range storeFaults {
		if !strings.Contains(f.name, "disk full") && !strings.Contains(f.name, "read-only") {
			continue // the lock waits out the retry budget, the I/O error needs root: TestStoreFaults has them
		}
		t.Run(f.name, func(t *testing.T) {
			r, s := startWithWhatsApp(t, true, fastSend)
			s.AutoReceipts("")
			var (
				mu      sync.Mutex
				acked   = map[string][]string{} // chat → message ids, in acknowledgement order
				refused int
				others  []string
			)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			chats := []string{"6281100000011", "6281100000012", "6281100000013"}
			for _, chat := range chats { // one client per chat: its order is the chat's
				wg.Go(func() {
					client := &http.Client{Timeout: 30 * time.Second}
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						case <-time.After(20 * time.Millisecond): // a bot's pace, not a flood
						}
						body := fmt.Sprintf(`{"to": %q, "text": "m%d"}`, chat, i)
						resp, b, err := postJSON(client, r.base+"/api/v1/messages", body)
						if err != nil {
							continue
						}
						var a struct{ ID string }
						json.Unmarshal(b, &a)
						mu.Lock()
						switch {
						case resp.StatusCode == 202 && a.ID != "":
							acked[chat+"@s.whatsapp.net"] = append(acked[chat+"@s.whatsapp.net"], a.ID)
						case (resp.StatusCode == 503 || resp.StatusCode == 429) && resp.Header.Get("Retry-After") != "" &&
							strings.Contains(string(b), `"error"`):
							refused++
						default:
							others = append(others, fmt.Sprintf("%d %s", resp.StatusCode, b))
						}
						mu.Unlock()
					}
				})
			}
			count := func() int {
				mu.Lock()
				defer mu.Unlock()
				n := 0
				for _, ids := range acked {
					n += len(ids)
				}
				return n
			}
			r.eventually("sends acknowledged before the fault", func() bool { return count() > 10 })
			clear := f.apply(t, r)
			r.eventually("a send refused during the fault", func() bool { mu.Lock(); defer mu.Unlock(); return refused > 0 })
			time.Sleep(300 * time.Millisecond) // receipts arrive during the fault (AutoReceipts)
			clear()
			r.eventually("sends acknowledged after the fault", func() bool { return count() > 20 })
			close(stop)
			wg.Wait()
			if len(others) > 0 {
				t.Fatalf("answers neither 202 nor 503/429 with Retry-After: %v", others)
			}
			t.Logf("%d acknowledged, %d refused", count(), refused)
			mu.Lock()
			defer mu.Unlock()
			for chat, ids := range acked {
				r.eventually("the acknowledged messages to "+chat+" delivered", func() bool {
					for _, id := range ids {
						if _, b := r.do("GET", "/api/v1/messages/"+id, ""); !strings.Contains(b, `"status": "delivered"`) {
							return false
						}
					}
					return true
				})
				var got []string
				for _, m := range s.Messages() {
					if m.To+"@s.whatsapp.net" == chat && (len(got) == 0 || got[len(got)-1] != m.ID) { // a resend under its id is one message
						got = append(got, m.ID)
					}
				}
				if !slices.Equal(got, ids) {
					t.Fatalf("%s: WhatsApp got %v, acknowledged %v", chat, got, ids)
				}
			}
		})
	}
}

// postJSON posts a JSON body and reads the whole answer (the stream tests' clients).
func postJSON(client *http.Client, url, body string) (*http.Response, []byte, error) {
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}
