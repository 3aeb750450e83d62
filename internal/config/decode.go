package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/remedy-run/remedy/conditions"
)

// decoder fills a struct from a yaml.Node strictly: unknown keys and mistyped values are
// errors with their position, and every error is collected.
type decoder struct {
	file   string
	errs   []string
	failed map[string]bool // paths whose value did not decode, so validation skips them
	path   string          // the path being decoded, for failed
}

// errorf reports a value that did not decode (validation then skips its path).
func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	if d.failed != nil {
		d.failed[d.path] = true
	}
	d.keyErrorf(n, format, args...)
}

// keyErrorf reports an unknown or repeated key; the other keys are still validated.
func (d *decoder) keyErrorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, fmt.Sprintf("%s:%d:%d: %s", d.file, n.Line, n.Column, fmt.Sprintf(format, args...)))
}

var durationType = reflect.TypeOf(time.Duration(0))

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	d.path = path
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.Type() == durationType {
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, "%s must be a duration like 30s or 5m", path)
			return
		}
		dur, err := conditions.ParseDuration(n.Value)
		if err != nil || dur < 0 {
			d.errorf(n, "%s: %q is not a duration (30s, 5m, 2h, 1d)", path, n.Value)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode && path == "" {
			d.errorf(n, "the configuration must be a mapping of keys (listen: …, data_dir: …), not a list or a single value")
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s must be a mapping", path)
			return
		}
		fields := map[string]int{}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
				fields[tag] = i
			}
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			idx, ok := fields[k.Value]
			if !ok {
				d.keyErrorf(k, "%sunknown key %q (known: %s)", prefix(path), k.Value, known(fields))
				continue
			}
			if seen[k.Value] {
				d.keyErrorf(k, "%skey %q repeated", prefix(path), k.Value)
				continue
			}
			seen[k.Value] = true
			d.decode(val, v.Field(idx), join(path, k.Value))
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "%s must be a list", path)
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s must be a mapping", path)
			return
		}
		m := reflect.MakeMap(v.Type())
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; seen[k.Value] {
				d.keyErrorf(k, "%skey %q repeated", prefix(path), k.Value)
				continue
			}
			seen[n.Content[i].Value] = true
			val := reflect.New(v.Type().Elem()).Elem()
			d.decode(n.Content[i+1], val, join(path, n.Content[i].Value))
			m.SetMapIndex(reflect.ValueOf(n.Content[i].Value), val)
		}
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			d.errorf(n, "%s must be a string", path)
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.errorf(n, "%s must be true or false", path)
			return
		}
		v.SetBool(n.Value == "true")
	case reflect.Int:
		i, err := strconv.Atoi(n.Value)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			d.errorf(n, "%s must be a whole number", path)
			return
		}
		v.SetInt(int64(i))
	default:
		d.errorf(n, "%s: unsupported value", path)
	}
}

func prefix(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func known(fields map[string]int) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
