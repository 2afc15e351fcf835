import assert from "node:assert/strict";
import { renderPrometheus } from "./prometheus.ts";

Deno.test("renderPrometheus writes HELP/TYPE once per family and escapes labels", () => {
  const text = renderPrometheus([
    {
      name: "proxy_x_total",
      help: "Things\nseen.",
      type: "counter",
      samples: [{ labels: { path: 'a"b\\c' }, value: 2 }, { value: Infinity }],
    },
    { name: "proxy_x_total", help: "duplicate", type: "counter", samples: [{ value: 9 }] },
    { name: "proxy_s", help: "S.", type: "summary", samples: [{ suffix: "_sum", value: 1.5 }] },
  ]);
  assert.equal(
    text,
    "# HELP proxy_x_total Things\\nseen.\n# TYPE proxy_x_total counter\n" +
      'proxy_x_total{path="a\\"b\\\\c"} 2\nproxy_x_total +Inf\n' +
      "# HELP proxy_s S.\n# TYPE proxy_s summary\nproxy_s_sum 1.5\n",
  );
});
