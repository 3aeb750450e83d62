// Package yamlerr turns yaml.v3's syntax errors into a line and column that point at the
// problem, for the policy and configuration loaders.
//
// yaml.v3 hides the parser's marks and prints one line number whose base depends on the
// kind of error: scanner errors count lines from 1, parser errors (unclosed brackets,
// a missing '-' or key) from 0, and a parser error on the first line prints no line at
// all (yaml.v3 decode.go, parser.fail). Locate undoes that from the message.
package yamlerr

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
)

var lineRE = regexp.MustCompile(`^line (\d+): `)

// parserProblems are the messages yaml.v3's parser (not its scanner) reports; their line
// is 0-based. Taken from yaml.v3 parserc.go.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// Locate returns the 1-based line and column of a yaml.v3 syntax error in data and its
// message without the "yaml: line N:" prefix. For an unclosed flow collection the
// position is its opening bracket; otherwise the first character of the line (yaml.v3
// reports no column).
func Locate(data []byte, err error) (line, col int, msg string) {
	msg = strings.TrimPrefix(err.Error(), "yaml: ")
	line = 1
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		if parserProblems[msg] {
			line++
		}
	}
	lines := bytes.Split(data, []byte("\n"))
	if line > len(lines) {
		line = max(len(lines), 1)
	}
	text := ""
	if line <= len(lines) {
		text = string(lines[line-1])
	}
	col = len(text) - len(strings.TrimLeft(text, " ")) + 1
	if msg == "did not find expected '-' indicator" || msg == "did not find expected key" {
		// yaml.v3 reports where the enclosing block opened, not the line that broke it:
		// find that line, the first whose indentation returns to no open level.
		if l, c := badIndent(lines, line); l > 0 {
			line, col = l, c
		}
	}
	var open string
	switch msg {
	case "did not find expected ',' or ']'":
		open, msg = "[", `"[" is not closed (expected ',' or ']')`
	case "did not find expected ',' or '}'":
		open, msg = "{", `"{" is not closed (expected ',' or '}')`
	}
	// The reported line is where the collection opened, or (when that is the first line)
	// where the parser gave up: look back for the bracket.
	for l := line; open != "" && l >= 1; l-- {
		if i := bytes.LastIndex(lines[l-1], []byte(open)); i >= 0 {
			line, col = l, i+1
			break
		}
	}
	return line, col, msg
}

// badIndent returns the first line at or after from (1-based) whose indentation steps
// back to a column no enclosing line opened, with its column; 0 when there is none.
// Blank and comment lines are skipped.
func badIndent(lines [][]byte, from int) (line, col int) {
	var levels []int // the open indentations, innermost last
	for i, l := range lines {
		text := string(l)
		body := strings.TrimLeft(text, " ")
		if body == "" || strings.HasPrefix(body, "#") {
			continue
		}
		indent := len(text) - len(body)
		dedent := false
		for len(levels) > 0 && levels[len(levels)-1] > indent {
			levels, dedent = levels[:len(levels)-1], true
		}
		switch {
		case len(levels) > 0 && levels[len(levels)-1] == indent:
		case dedent && i+1 >= from:
			return i + 1, indent + 1
		default:
			levels = append(levels, indent)
		}
	}
	return 0, 0
}
