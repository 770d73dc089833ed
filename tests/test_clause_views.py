"""How the clause page shows amendments: tracked changes, proposed text only, side by side."""

from __future__ import annotations

import re

from app.services import edit_amendment
from tests.test_amendment_editing import AUTHOR, EDITED, propose
from tests.test_pages import CLAUSE, user_id


def amendment_html(page: str, amendment_id: int) -> str:
    start = page.index(f'<article class="app-amendment" id="amendment-{amendment_id}"')
    return page[start : page.index("</article>", start)]


def test_the_three_views_of_one_amendment(client, seeded):
    amendment = propose(seeded, AUTHOR, clause="6")
    changes = amendment_html(client.get(f"{CLAUSE}/6").text, amendment.id)
    # A removed phrase, a space, then its replacement; both named in words.
    assert re.search(
        r"</del> <ins class=\"app-ins\"><span class=\"govuk-visually-hidden\">added: ", changes
    )
    assert '<span class="govuk-visually-hidden">removed: </span>' in changes

    proposed = client.get(f"{CLAUSE}/6?view=proposed")
    card = amendment_html(proposed.text, amendment.id)
    assert "<del" not in card and "<ins" not in card
    assert "Reply to every comment within two working hours." in card
    assert '<strong aria-current="true">Proposed text only</strong>' in proposed.text
    # Sorting keeps the chosen view.
    assert 'href="?sort=newest&amp;view=proposed#amendments"' in proposed.text

    sides = amendment_html(client.get(f"{CLAUSE}/6?view=side-by-side").text, amendment.id)
    current_side, proposed_side = sides.split("Proposed wording</h4>")
    assert "Current wording</h4>" in current_side
    assert "<del" in current_side and "<ins" not in current_side
    assert "<ins" in proposed_side and "<del" not in proposed_side

    # Anything else is the default.
    assert "<del" in amendment_html(client.get(f"{CLAUSE}/6?view=nonsense").text, amendment.id)


def test_diffs_are_computed_once_and_follow_an_edit(client, seeded):
    word_diff = client.app.state.templates.env.globals["word_diff"]
    diff_html = client.app.state.templates.env.globals["diff_html"]
    client.get(f"{CLAUSE}/7")
    misses = word_diff.cache_info().misses
    rendered = diff_html.cache_info().misses
    client.get(f"{CLAUSE}/7")
    assert diff_html.cache_info().misses == rendered, "a diff was rendered again"
    client.get(f"{CLAUSE}/7?view=side-by-side")
    assert word_diff.cache_info().misses == misses, "a diff was computed again"

    amendment = propose(seeded, AUTHOR, clause="6")
    assert "two working hours" in amendment_html(client.get(f"{CLAUSE}/6").text, amendment.id)
    seeded.write_call(edit_amendment, user_id(seeded, AUTHOR), amendment.id, EDITED)
    card = amendment_html(client.get(f"{CLAUSE}/6").text, amendment.id)
    assert "four" in card and "two working hours" not in card


def test_signed_out_readers_get_a_kept_article_that_follows_votes_and_decisions(client, seeded):
    """Signed out, an amendment's article is kept rendered; it is the template's own
    rendering, and a vote (new counts) or a change of status is a new one at once."""
    from app.services import cast_vote
    from tests.test_amendment_editing import VOTER
    from tests.test_pages import set_consultation, sign_in

    set_consultation(seeded, live_results=True)
    amendment = propose(seeded, AUTHOR, clause="6")
    supports = f'id="vote-{amendment.id}-supports">'
    first = amendment_html(client.get(f"{CLAUSE}/6").text, amendment.id)
    assert supports + "0<" in first
    assert "<form" not in first and "csrf" not in first.lower()
    assert amendment_html(client.get(f"{CLAUSE}/6").text, amendment.id) == first

    seeded.write_call(cast_vote, user_id(seeded, VOTER), amendment.id, "support")
    assert supports + "1<" in amendment_html(client.get(f"{CLAUSE}/6").text, amendment.id)

    set_consultation(seeded, live_results=False)
    hidden = amendment_html(client.get(f"{CLAUSE}/6").text, amendment.id)
    assert "Vote counts are hidden" in hidden and supports not in hidden

    # Signed in, the same amendment comes with the vote form, never a kept article.
    sign_in(client, seeded, VOTER)
    signed_in = amendment_html(client.get(f"{CLAUSE}/6").text, amendment.id)
    assert "Your vote: <strong>support</strong>" in signed_in and "<form" in signed_in
