// Package layout holds the test that keeps README's package diagram equal to the imports of every
// package of the module.
package layout
