package policies

import (
	"slices"
	"strings"
	"text/template"
)

// TemplateData is what `{{ }}` in annotations and action parameters can read.
type TemplateData struct {
	Policy string
	Labels map[string]string
	Event  map[string]any
	Value  float64
}

func render(t *template.Template, data TemplateData, fallback string) string {
	if t == nil {
		return fallback
	}
	var b strings.Builder
	m := map[string]any{"policy": data.Policy, "labels": data.Labels, "event": data.Event, "value": data.Value}
	if err := t.Execute(&b, m); err != nil {
		return fallback
	}
	return b.String()
}

// RenderAnnotations fills the policy's annotation templates.
func (p *Policy) RenderAnnotations(data TemplateData) map[string]string {
	if len(p.Annotations) == 0 {
		return nil
	}
	out := make(map[string]string, len(p.Annotations))
	for k, v := range p.Annotations {
		out[k] = render(p.annotations[k], data, v)
	}
	return out
}

// TemplatedParams are the names of the step's parameters written as templates, sorted:
// their values come from event data, so an action may check them again (WEBHOOK's url
// against webhook_hosts).
func (s *Step) TemplatedParams() []string {
	var out []string
	for k, t := range s.params {
		if t != nil {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// RenderParams fills the step's parameter templates.
func (s *Step) RenderParams(data TemplateData) map[string]string {
	out := make(map[string]string, len(s.With))
	for k, v := range s.With {
		out[k] = render(s.params[k], data, v)
	}
	return out
}
