# make install: the binary, the man page tickgate(1) and an example
# configuration (both written by the binary from its key table, like
# --help), the demo page and a systemd unit. PREFIX (default /usr/local)
# and DESTDIR (a staging root) as usual; SYSCONFDIR defaults to /etc for
# PREFIX=/usr and $(PREFIX)/etc otherwise. The generated files are written
# again on every install, so they always carry this install's paths.
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(PREFIX)/lib/systemd/system
DATADIR    ?= $(PREFIX)/share/tickgate
GEN        := $(BUILD)/dist

.PHONY: install uninstall
install: $(BUILD)/tickgate
	@mkdir -p $(GEN)
	./$(BUILD)/tickgate --print-man > $(GEN)/tickgate.1
	@# every key at its default, commented; the demo page where it is installed
	./$(BUILD)/tickgate --print-config | sed 's|^;static_dir = .*|static_dir = $(DATADIR)/web|' > $(GEN)/tickgate.ini
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' contrib/systemd/tickgate.service.in \
	  > $(GEN)/tickgate.service
	install -Dm755 $(BUILD)/tickgate $(DESTDIR)$(BINDIR)/tickgate
	install -Dm644 $(GEN)/tickgate.1 $(DESTDIR)$(MANDIR)/man1/tickgate.1
	install -Dm644 $(GEN)/tickgate.service $(DESTDIR)$(UNITDIR)/tickgate.service
	install -d $(DESTDIR)$(SYSCONFDIR)/tickgate $(DESTDIR)$(DATADIR)/web
	@# an operator's configuration is never overwritten
	test -e $(DESTDIR)$(SYSCONFDIR)/tickgate/tickgate.ini || \
	  install -m644 $(GEN)/tickgate.ini $(DESTDIR)$(SYSCONFDIR)/tickgate/tickgate.ini
	install -m644 $(GEN)/tickgate.ini $(DESTDIR)$(DATADIR)/tickgate.ini.example
	@# -L: web/client is a link to the JavaScript client's sources (clients/js/src)
	cp -RL web/. $(DESTDIR)$(DATADIR)/web/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/tickgate $(DESTDIR)$(MANDIR)/man1/tickgate.1 $(DESTDIR)$(UNITDIR)/tickgate.service
	rm -rf $(DESTDIR)$(DATADIR)
