"""html_to_text on a small Sphinx-like page and on malformed markup."""

import os
import unittest

from trainer.data import prepare_prose

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata", "prose_page.html")


class HtmlToTextTest(unittest.TestCase):
    def test_fixture_keeps_prose_and_paragraphs(self):
        with open(FIXTURE, encoding="utf-8") as f:
            text = prepare_prose.html_to_text(f.read())
        self.assertEqual(
            text,
            "Café & Tea\n"
            "\n"
            "The first paragraph spans several lines <and> has \u201cquotes\u201d.\n"
            "\n"
            "Second paragraph with inline code.\n"
            "After a line break.\n"
            "\n"
            "for x in xs:\n"
            "    print(x)\n"
            "\n"
            "One\n"
            "Two\n"
            "\n"
            "a b\n")

    def test_fixture_drops_scripts_styles_and_navigation(self):
        with open(FIXTURE, encoding="utf-8") as f:
            text = prepare_prose.html_to_text(f.read())
        for chrome in ("script text", "injected", "color", "should not appear", "previous",
                       "Home", "Docs", "Table of Contents", "sidebar", "footer", "\u00b6"):
            self.assertNotIn(chrome, text)

    def test_unclosed_elements_inside_a_dropped_subtree_end_with_it(self):
        self.assertEqual(
            prepare_prose.html_to_text("<nav><div><p>menu<li>item</nav><p>kept</p>"), "kept\n")

    def test_stray_end_tags_and_empty_input(self):
        self.assertEqual(prepare_prose.html_to_text("</div>one</nav> two</p>"), "one two\n")
        self.assertEqual(prepare_prose.html_to_text(""), "")
        self.assertEqual(prepare_prose.html_to_text("<script>x</script>"), "")

    def test_role_navigation_on_any_element_is_dropped(self):
        self.assertEqual(
            prepare_prose.html_to_text('<div role="navigation">nav</div><div>body</div>'),
            "body\n")


if __name__ == "__main__":
    unittest.main()
