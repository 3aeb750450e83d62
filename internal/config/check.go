package config

import "gopkg.in/yaml.v3"

// Check validates a configuration changed after Load (package bot applies its Config's
// fields on top of the file) with the same rules as Load, so that no way in skips one
// (a non-loopback listen address without a token, a command prefix with spaces, an
// admin that is not a number). Errors name source ("bot.Config") and the key.
func (c *Config) Check(source string) error {
	if errs := c.validate(source, &yaml.Node{}, nil, nil); len(errs) > 0 {
		sortErrors(errs)
		return errs
	}
	return nil
}
