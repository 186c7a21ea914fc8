"""The OpenAPI document, its docs page and the health check are part of the public contract."""

from app import create_app
from tests.worlds.config import TEST_CONFIG


def test_the_openapi_document_lists_the_v1_endpoints(client):
    paths = client.get("/api/openapi.json").json["paths"]
    assert {"/api/v1/auth/tokens", "/api/v1/products", "/api/v1/ledger/verify"} <= set(paths)


def test_the_openapi_document_declares_bearer_authentication(client):
    spec = client.get("/api/openapi.json").json
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


def test_the_docs_page_loads_swagger_ui_from_the_service_itself(client):
    page = client.get("/api/docs").get_data(as_text=True)
    script = client.get("/api/docs/static/swagger-ui-bundle.js")
    assert 'src="/api/docs/static/swagger-ui-bundle.js"' in page
    assert script.status_code == 200


def test_the_health_check_answers_503_when_the_database_is_unreachable(tmp_path):
    app = create_app({**TEST_CONFIG, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/x"})
    response = app.test_client().get("/healthz")
    app.extensions["celltrail.db"].engine.dispose()
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
