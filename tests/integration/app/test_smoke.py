"""The demo database is there and the app answers."""

from sqlalchemy import func, select

from lots.models import User


def test_the_demo_users_are_loaded(session):
    assert session.scalar(select(func.count(User.id))) >= 8


def test_health_check_reports_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok"}
