"""Extracts English prose from installed Debian documentation packages, one text file per document.

The output directory is a document-split corpus for prepare_data / a spec's `sources` (docs/DATA.md):
every HTML page, POD file, man page, plain-text kernel document and Bible book becomes one UTF-8
file `<out>/<source>/<path>.txt`, so the validation set (chosen by document name) is stable.

HTML goes through Python's html.parser (a real tokenizer: entities and character references are
decoded by it); scripts, styles and navigation are dropped, block elements become paragraph
breaks. POD is rendered by pod2text (Pod::Text), man pages by man/groff, the KJV Bible by the
`bible` program of bible-kjv. Needs, from Debian: linux-doc-6.1 python3.11-doc debian-handbook
debian-reference-en python-django-doc python-sqlalchemy-doc postgresql-doc-15 git-doc nodejs-doc
cmake-doc perl-doc bible-kjv manpages manpages-dev man-db.

  python3 trainer/data/prepare_prose.py --out=/data/prose
"""

import argparse
import collections
import gzip
import html.parser
import multiprocessing
import os
import shutil
import subprocess
import sys
import time

# Elements whose whole subtree is not prose.
_DROP_TAGS = frozenset({
    "head", "script", "style", "noscript", "template", "nav", "header", "footer", "form",
    "button", "select", "textarea", "svg", "math", "iframe", "object", "canvas",
})
# ARIA roles, (Sphinx, DocBook/Publican, AsciiDoc) classes and ids that mark navigation and page chrome.
_DROP_ROLES = frozenset({"navigation", "search", "banner", "contentinfo"})
_DROP_CLASSES = frozenset({
    "headerlink", "sphinxsidebar", "related", "footer", "navheader", "navfooter", "docnav",
    "breadcrumbs", "skip-link", "nav", "toc", "header-container", "mark",
})
_DROP_IDS = frozenset({
    "footer", "hd", "ft", "global-nav", "sidebar", "searchbox", "docs-top-navigation-container",
    "fixed-sidebar", "docs-bottom-navigation", "docs-copyright", "docs-narrow-top-navigation",
    "narrow-index-nav", "docs-sidebar-popout", "docs-sidebar", "column2", "gtoc", "toc", "contents",
})
# Elements that never have content or an end tag.
_VOID_TAGS = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
    "track", "wbr",
})
# Elements that start and end a paragraph; lines for the rest of the block-level set.
_PARAGRAPH_TAGS = frozenset({
    "p", "div", "section", "article", "main", "aside", "blockquote", "pre", "table", "ul",
    "ol", "dl", "h1", "h2", "h3", "h4", "h5", "h6", "figure", "figcaption", "hr", "address",
    "details", "summary", "fieldset", "body",
})
_LINE_TAGS = frozenset({"br", "li", "tr", "dt", "dd", "caption", "thead", "tbody", "tfoot"})
_CELL_TAGS = frozenset({"td", "th"})


class _TextExtractor(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self._out = []          # finished text
        self._break = 0         # pending break before the next text: 0 none, 1 line, 2 paragraph
        self._space = False     # pending space before the next text
        self._skip = []         # open elements of a dropped subtree
        self._pre = 0           # depth of <pre>

    def _request_break(self, level):
        self._break = max(self._break, level)

    def _drops(self, tag, attrs):
        if tag in _DROP_TAGS:
            return True
        for name, value in attrs:
            if value is None:
                continue
            if name == "role" and value.strip().lower() in _DROP_ROLES:
                return True
            if name == "class" and not _DROP_CLASSES.isdisjoint(value.split()):
                return True
            if name == "id" and value in _DROP_IDS:
                return True
        return False

    def handle_starttag(self, tag, attrs):
        if self._skip:
            if tag not in _VOID_TAGS:
                self._skip.append(tag)
            return
        if self._drops(tag, attrs):
            if tag not in _VOID_TAGS:
                self._skip.append(tag)
            return
        self._structure(tag, opening=True)

    def handle_startendtag(self, tag, attrs):
        if not self._skip and not self._drops(tag, attrs):
            self._structure(tag, opening=True)
            self._structure(tag, opening=False)

    def handle_endtag(self, tag):
        if self._skip:
            # Close up to the matching open element; an unmatched end tag changes nothing.
            if tag in self._skip:
                while self._skip.pop() != tag:
                    pass
            return
        self._structure(tag, opening=False)

    def _structure(self, tag, opening):
        if tag == "pre":
            self._pre = self._pre + 1 if opening else max(0, self._pre - 1)
        if tag in _PARAGRAPH_TAGS:
            self._request_break(2)
        elif tag in _LINE_TAGS:
            if opening or tag != "br":
                self._request_break(1)
        elif tag in _CELL_TAGS and opening:
            self._space = True

    def handle_data(self, data):
        if self._skip or not data:
            return
        if self._pre:
            self._emit(data, leading_space=False)
            return
        words = data.split()
        if not words:
            self._space = True
            return
        self._emit(" ".join(words), leading_space=data[0].isspace())
        self._space = data[-1].isspace()

    def _emit(self, text, leading_space):
        if self._out:
            if self._break:
                while self._out and self._out[-1] in (" ", "\n"):
                    self._out.pop()
                self._out.append("\n" * self._break)
            elif (self._space or leading_space) and self._out[-1][-1:] not in (" ", "\n"):
                self._out.append(" ")
        self._out.append(text)
        self._break = 0
        self._space = False

    def text(self):
        return "".join(self._out).strip() + "\n" if self._out else ""


def html_to_text(markup):
    """Returns the prose of an HTML page: paragraphs separated by blank lines, chrome dropped."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    return parser.text()


# ---- sources ----------------------------------------------------------------------------------

_LINUX_DOC = "/usr/share/doc/linux-doc-6.1"
# (source, directory of HTML pages): Sphinx, DocBook and AsciiDoc manuals, English only.
_HTML_SOURCES = (
    ("python3.11-doc", "/usr/share/doc/python3.11/html"),
    ("debian-handbook", "/usr/share/doc/debian-handbook/html/en-US"),
    ("debian-reference-en", "/usr/share/debian-reference"),
    ("python-django-doc", "/usr/share/doc/python-django-doc/html"),
    ("python-sqlalchemy-doc", "/usr/share/doc/python-sqlalchemy-doc/html"),
    ("postgresql-doc-15", "/usr/share/doc/postgresql-doc-15/html"),
    ("git-doc", "/usr/share/doc/git-doc"),
    ("nodejs-doc", "/usr/share/doc/nodejs/api"),
    ("cmake-doc", "/usr/share/doc/cmake-data/html"),
)
_PERL_POD = "/usr/share/perl/5.36.0/pod"
# Generated index pages hold no prose; Node's all.html repeats every other page.
_HTML_SKIP_NAMES = frozenset({
    "genindex.html", "search.html", "py-modindex.html", "ix01.html", "all.html",
})
# Kernel documents that are neither prose nor rendered to HTML above (.rst).
_LINUX_DOC_NOT_TEXT = (".rst.gz", ".yaml.gz", ".svg.gz", ".dot.gz", ".sh.gz", ".py.gz",
                       ".ttf.gz", ".exceptions.gz")
_HTML_SKIP_DIRS = frozenset({"_sources", "_static", "_images", "_downloads"})
_MAN_PACKAGES = ("manpages", "manpages-dev")
_BIBLE_BOOKS = (
    "Genesis Exodus Leviticus Numbers Deuteronomy Joshua Judges Ruth 1Samuel 2Samuel 1Kings "
    "2Kings 1Chronicles 2Chronicles Ezra Nehemiah Esther Job Psalms Proverbs Ecclesiastes "
    "Song Isaiah Jeremiah Lamentations Ezekiel Daniel Hosea Joel Amos Obadiah Jonah Micah Nahum "
    "Habakkuk Zephaniah Haggai Zechariah Malachi Matthew Mark Luke John Acts Romans "
    "1Corinthians 2Corinthians Galatians Ephesians Philippians Colossians 1Thessalonians "
    "2Thessalonians 1Timothy 2Timothy Titus Philemon Hebrews James 1Peter 2Peter 1John 2John "
    "3John Jude Revelation").split()


def _walk(root, keep):
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _HTML_SKIP_DIRS)
        for name in sorted(files):
            path = os.path.join(directory, name)
            if keep(name) and os.path.isfile(path):
                yield path


def _html_docs(source, root):
    for path in _walk(root, lambda n: n.endswith(".html") and n not in _HTML_SKIP_NAMES):
        yield (source, os.path.relpath(path, root)[:-len(".html")], "html", path)


def _missing():
    """The Debian packages whose files are absent (a missing package would silently shrink the
    corpus and move its token count)."""
    needed = [("linux-doc-6.1", os.path.join(_LINUX_DOC, "html")), ("perl-doc", _PERL_POD)]
    needed += [(source, root) for source, root in _HTML_SOURCES]
    missing = [package for package, root in needed if not os.path.isdir(root)]
    for package, program in (("bible-kjv", "bible"), ("perl", "pod2text"), ("man-db", "man"),
                             ("bsdextrautils", "col")):
        if shutil.which(program) is None:
            missing.append(package)
    for package in _MAN_PACKAGES:
        if subprocess.run(["dpkg", "-s", package], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            missing.append(package)
    return missing


def _tasks():
    """Every document as (source, name, kind, argument), in a fixed order; names are unique."""
    yield from _html_docs("linux-doc", os.path.join(_LINUX_DOC, "html"))
    # Plain-text kernel documents (.txt, ABI/ entries) that Sphinx does not render.
    docs = os.path.join(_LINUX_DOC, "Documentation")
    for path in _walk(docs, lambda n: n.endswith(".gz") and not n.endswith(_LINUX_DOC_NOT_TEXT)):
        yield ("linux-doc", os.path.relpath(path, _LINUX_DOC)[:-len(".gz")], "gzip", path)
    for source, root in _HTML_SOURCES:
        yield from _html_docs(source, root)
    for path in _walk(_PERL_POD, lambda n: n.endswith(".pod")):
        yield ("perl-doc", os.path.relpath(path, _PERL_POD)[:-len(".pod")], "pod", path)
    for number, book in enumerate(_BIBLE_BOOKS, 1):
        yield ("bible-kjv", "%02d-%s" % (number, book), "bible", book)
    # The Linux man-pages project's pages (system calls, C library, files, overviews).
    for package in _MAN_PACKAGES:
        listing = subprocess.run(["dpkg", "-L", package], stdout=subprocess.PIPE, check=True)
        for path in sorted(listing.stdout.decode().split("\n")):
            if (path.startswith("/usr/share/man/man") and os.path.isfile(path)
                    and not os.path.islink(path)):  # a link is another name of a page taken
                name = os.path.relpath(path, "/usr/share/man")
                yield ("man", name[:-len(".gz")] if name.endswith(".gz") else name, "man", path)


def _document_file(source, name):
    """The output file of a document, relative to --out."""
    path = os.path.join(source, name)
    return path if path.endswith(".txt") else path + ".txt"


def _run(argv, env=None):
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                            timeout=120)
    return result.stdout.decode("utf-8", "replace") if result.returncode == 0 else ""


_MAN_ENV = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="", LC_ALL="C.UTF-8")


def _extract(task):
    source, name, kind, arg = task
    try:
        if kind == "html":
            with open(arg, "rb") as f:
                text = html_to_text(f.read().decode("utf-8", "replace"))
        elif kind == "gzip":
            with gzip.open(arg, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        elif kind == "pod":
            text = _run(["pod2text", "--utf8", arg])
        elif kind == "bible":
            text = _run(["bible", "-l0", "%s1:1-%s999:999" % (arg, arg)])
        else:  # man: groff renders; col -b removes the terminal's overstrike emphasis
            with (gzip.open(arg, "rb") if arg.endswith(".gz") else open(arg, "rb")) as f:
                if f.read(4) == b".so ":  # a redirect to another page, rendered under its name
                    return task, "", None
            rendered = subprocess.run(
                ["man", "--no-hyphenation", "--no-justification", "-E", "UTF-8", "-l", arg],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_MAN_ENV, timeout=120)
            text = subprocess.run(["col", "-bx"], input=rendered.stdout, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, timeout=120,
                                  env=_MAN_ENV).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError, EOFError) as e:
        return task, None, str(e)
    return task, text.strip() + "\n" if text.strip() else "", None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output directory (must not exist)")
    parser.add_argument("--min_chars", type=int, default=200,
                        help="drop documents shorter than this (index stubs, empty pages)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if os.path.exists(args.out):
        sys.exit("--out: %s already exists" % args.out)
    missing = _missing()
    if missing:
        sys.exit("not installed: %s (apt-get install %s)" % (" ".join(missing), " ".join(missing)))
    tasks = list(_tasks())
    files = collections.Counter(_document_file(t[0], t[1]) for t in tasks)
    if len(files) != len(tasks):  # two pages would overwrite one file
        sys.exit("duplicate document names: %s" % [f for f, n in files.items() if n > 1][:5])
    partial = args.out + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    stats = {}  # source -> [documents, bytes, dropped]
    start = time.monotonic()
    with multiprocessing.Pool(args.jobs) as pool:
        for done, (task, text, error) in enumerate(pool.imap(_extract, tasks, chunksize=8), 1):
            source, name = task[0], task[1]
            entry = stats.setdefault(source, [0, 0, 0])
            if error is not None:
                print("\nskipped %s/%s: %s" % (source, name, error), file=sys.stderr)
            if not text or len(text) < args.min_chars:
                entry[2] += 1
            else:
                path = os.path.join(partial, _document_file(source, name))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                data = text.encode("utf-8")
                with open(path, "wb") as f:
                    f.write(data)
                entry[0] += 1
                entry[1] += len(data)
            if done % 200 == 0 or done == len(tasks):
                print("\r%d/%d documents  %.0f s" % (done, len(tasks), time.monotonic() - start),
                      end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    os.rename(partial, args.out)
    print("source\tdocuments\tbytes\tdropped")
    for source, (documents, size, dropped) in stats.items():
        print("%s\t%d\t%d\t%d" % (source, documents, size, dropped))
    print("total\t%d\t%d\t%d" % tuple(sum(v[i] for v in stats.values()) for i in range(3)))


if __name__ == "__main__":
    main()
