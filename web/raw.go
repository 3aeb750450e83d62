package web

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// jsonRaw holds a body that may be one object or a list of them.
type jsonRaw json.RawMessage

func (r *jsonRaw) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

func (r jsonRaw) unmarshalOneOrMany(list *[]EventIn) error {
	b := bytes.TrimSpace(r)
	dec := func(data []byte, v any) error {
		d := json.NewDecoder(bytes.NewReader(data))
		d.DisallowUnknownFields()
		return d.Decode(v)
	}
	if len(b) > 0 && b[0] == '[' {
		if err := dec(b, list); err != nil {
			return fmt.Errorf("malformed events: %v", err)
		}
		return nil
	}
	var one EventIn
	if err := dec(b, &one); err != nil {
		return fmt.Errorf("malformed event: %v", err)
	}
	*list = []EventIn{one}
	return nil
}
