// Package docs holds the project's documentation; its tests run the
// commands that docs/operations.md gives an operator and check that every
// flag it names exists.
package docs
