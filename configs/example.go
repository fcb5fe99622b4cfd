package configs

import _ "embed"

// Example is the annotated example configuration, used when no file is given and none exists.
//
//go:embed chatgate.yaml
var Example []byte
