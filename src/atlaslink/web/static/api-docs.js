// Starts Swagger UI on the platform's own OpenAPI document (no external requests); the
// viewer's copy is labelled 3.0 for this Swagger UI (see app.py).
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({ url: "/api/docs/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
