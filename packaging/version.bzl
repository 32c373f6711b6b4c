"""The Debian package's version: the first entry of debian/changelog (the
package build checks that the two agree)."""

LOCKD_DEB_VERSION = "0.1.0-1"
