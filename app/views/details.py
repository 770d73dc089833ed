"""The "Your details" page: how a participant is shown on what they write."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.auth import csrf_protected, current_user
from app.models import User
from app.people import validate_details
from app.services import save_details
from app.web import form_fields, redirect, render

PATH = "/your-details"


async def _signed_in(request: Request) -> User | Response:
    user = await current_user(request)
    return user if user is not None else redirect(f"/sign-in?next={PATH}")


def _form_of(user: User) -> dict[str, str]:
    return {
        "name_choice": "display_name" if user.display_name else "pseudonym",
        "display_name": user.display_name or "",
        "show_organisation": "yes" if user.show_organisation else "no",
    }


async def your_details(request: Request) -> Response:
    """Show the participant's choices: display name or pseudonym, organisation shown or not."""
    user = await _signed_in(request)
    if isinstance(user, Response):
        return user
    return await render(
        request,
        "details/your_details.html",
        {"form": _form_of(user), "errors": {}, "saved": request.query_params.get("saved")},
    )


@csrf_protected
async def save(request: Request) -> Response:
    """Save the choices, or show the form again with a message next to each wrong field."""
    user = await _signed_in(request)
    if isinstance(user, Response):
        return user
    fields = await form_fields(request, "name_choice", "display_name", "show_organisation")
    details, errors = validate_details(
        fields["name_choice"], fields["display_name"], fields["show_organisation"]
    )
    if details is None:
        return await render(
            request,
            "details/your_details.html",
            {"form": fields, "errors": errors},
            status_code=422,
        )
    await request.app.state.database.write(save_details, user.id, details)
    return redirect(f"{PATH}?saved=1")
