// The API reference page (/docs): Swagger UI, from the node's own copy, on the node's own
// OpenAPI document. A classic script (the bundle defines a global), run after the bundle.

/* global SwaggerUIBundle */
window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null, // no badge from an outside validator: the page talks to this node only
});
