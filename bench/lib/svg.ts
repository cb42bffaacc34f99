// A horizontal bar chart in plain SVG, one panel per chart, written by
// hand so the README can embed it without any plotting dependency.
// libforks bars are blue, baselines grey; each bar carries its value as
// text; latency bars get a thin p99 whisker. A panel whose values span
// more than 20x uses a log scale (and says so).

import type { Chart } from "./result.ts";

const WIDTH = 1040;
const LABEL_WIDTH = 390;
const VALUE_WIDTH = 170;
const BAR_HEIGHT = 20;
const BAR_GAP = 8;
const PANEL_TOP = 46;
const PANEL_BOTTOM = 30;
const PANEL_GAP = 18;
const COLORS = { libforks: "#2563eb", baseline: "#9ca3af", probe: "#f59e0b" };

export function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

export function formatValue(value: number, unit: string): string {
  if (!Number.isFinite(value)) return "n/a";
  if (unit === "µs") {
    if (value >= 10_000) return `${(value / 1000).toFixed(1)} ms`;
    if (value >= 1000) return `${(value / 1000).toFixed(2)} ms`;
    return `${value.toFixed(value < 10 ? 1 : 0)} µs`;
  }
  if (unit === "/s") return `${Math.round(value).toLocaleString("en-US")}/s`;
  if (unit === "MiB") return `${value.toFixed(value < 10 ? 2 : 1)} MiB`;
  if (unit === "KiB") return value >= 10_240 ? `${(value / 1024).toFixed(1)} MiB` : `${Math.round(value).toLocaleString("en-US")} KiB`;
  return `${value.toFixed(2)} ${unit}`;
}

interface Scale {
  log: boolean;
  x: (value: number) => number;
  ticks: number[];
}

function makeScale(values: number[], width: number): Scale {
  const positive = values.filter((v) => Number.isFinite(v) && v > 0);
  const max = Math.max(...positive, 1e-9);
  const min = Math.min(...positive, max);
  if (max / min > 20) {
    // One decade below the smallest value at most, so it still gets a bar.
    const lo = Math.floor(Math.log10(min / 3));
    const hi = Math.ceil(Math.log10(max));
    const span = Math.max(hi - lo, 1);
    const ticks: number[] = [];
    for (let e = lo; e <= hi; e++) ticks.push(10 ** e);
    // Bars start at the lowest decade, so the smallest still shows.
    return { log: true, x: (v) => (v <= 0 ? 0 : ((Math.log10(v) - lo) / span) * width), ticks };
  }
  const step = niceStep(max / 4);
  const top = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let t = 0; t <= top + step / 2; t += step) ticks.push(t);
  return { log: false, x: (v) => (Math.max(0, v) / top) * width, ticks };
}

function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

function tickLabel(value: number, unit: string): string {
  if (unit === "µs") return value >= 1000 ? `${value / 1000} ms` : `${value} µs`;
  if (unit === "/s") return value >= 1000 ? `${value / 1000}k` : String(value);
  if (unit === "MiB") return `${Number(value.toPrecision(4))} MiB`;
  if (unit === "KiB") return `${Number(value.toPrecision(4))} KiB`;
  return String(value);
}

function panel(chart: Chart, top: number): { svg: string; height: number } {
  const plotWidth = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 20;
  const values = chart.bars.flatMap((b) => (b.whisker ? [b.value, b.whisker] : [b.value]));
  // A linear axis spans the bars (with room for their p99 up to 2.5x the
  // longest); a longer whisker is clipped at the edge with an arrow head.
  const barMax = Math.max(...chart.bars.map((b) => b.value));
  const scaleValues = values.filter((v) => v <= barMax * 2.5);
  const linear = makeScale(scaleValues, plotWidth);
  const scale = linear.log ? makeScale(values, plotWidth) : linear;
  const plotHeight = chart.bars.length * (BAR_HEIGHT + BAR_GAP);
  const height = PANEL_TOP + plotHeight + PANEL_BOTTOM;
  const x0 = LABEL_WIDTH;
  const parts: string[] = [];
  parts.push(`<g transform="translate(0,${top})">`);
  parts.push(`<rect x="0.5" y="0.5" width="${WIDTH - 1}" height="${height - 1}" rx="6" fill="#ffffff" stroke="#e5e7eb"/>`);
  const hint = `${chart.better === "lower" ? "lower is better" : "higher is better"}${scale.log ? ", log scale" : ""}${values.length > chart.bars.length ? "; whisker: p99" : ""}`;
  parts.push(`<text x="14" y="24" class="title">${escapeXml(chart.title)}</text>`);
  parts.push(`<text x="${WIDTH - 14}" y="24" class="hint" text-anchor="end">${escapeXml(hint)}</text>`);
  const plotTop = PANEL_TOP - 8;
  for (const tick of scale.ticks) {
    const x = x0 + scale.x(tick);
    if (x < x0 - 0.5 || x > x0 + plotWidth + 0.5) continue;
    parts.push(`<line x1="${x.toFixed(1)}" y1="${plotTop}" x2="${x.toFixed(1)}" y2="${plotTop + plotHeight}" class="grid"/>`);
    parts.push(`<text x="${x.toFixed(1)}" y="${plotTop + plotHeight + 16}" class="tick" text-anchor="middle">${escapeXml(tickLabel(tick, chart.unit))}</text>`);
  }
  chart.bars.forEach((bar, i) => {
    const y = plotTop + i * (BAR_HEIGHT + BAR_GAP) + BAR_GAP / 2;
    const w = Math.max(1, scale.x(bar.value));
    parts.push(`<text x="${x0 - 10}" y="${y + BAR_HEIGHT * 0.72}" class="label" text-anchor="end">${escapeXml(bar.label)}</text>`);
    parts.push(`<rect x="${x0}" y="${y}" width="${w.toFixed(1)}" height="${BAR_HEIGHT}" rx="2" fill="${COLORS[bar.role]}"><title>${escapeXml(`${bar.label}: ${formatValue(bar.value, chart.unit)}`)}</title></rect>`);
    let textX = x0 + w + 6;
    let text = formatValue(bar.value, chart.unit);
    if (bar.whisker !== undefined && Number.isFinite(bar.whisker) && bar.whisker > bar.value) {
      const clipped = scale.x(bar.whisker) > plotWidth;
      const wx = x0 + Math.min(plotWidth, scale.x(bar.whisker));
      const mid = y + BAR_HEIGHT / 2;
      parts.push(`<line x1="${(x0 + w).toFixed(1)}" y1="${mid}" x2="${wx.toFixed(1)}" y2="${mid}" class="whisker"/>`);
      if (clipped) {
        parts.push(`<path d="M${(wx - 6).toFixed(1)},${mid - 4} L${wx.toFixed(1)},${mid} L${(wx - 6).toFixed(1)},${mid + 4}" class="whisker" fill="none"/>`);
        text += ` (p99 ${formatValue(bar.whisker, chart.unit)})`;
      } else {
        parts.push(`<line x1="${wx.toFixed(1)}" y1="${mid - 5}" x2="${wx.toFixed(1)}" y2="${mid + 5}" class="whisker"/>`);
      }
      textX = Math.max(textX, wx + 6);
    }
    parts.push(`<text x="${Math.min(textX, x0 + plotWidth + 8).toFixed(1)}" y="${y + BAR_HEIGHT * 0.72}" class="value">${escapeXml(text)}</text>`);
  });
  parts.push("</g>");
  return { svg: parts.join("\n"), height };
}

/** The whole chart: a legend, then one panel per chart. */
export function renderSvg(charts: Chart[], subtitle: string): string {
  const panels: string[] = [];
  let top = 64;
  for (const chart of charts) {
    const { svg, height } = panel(chart, top);
    panels.push(svg);
    top += height + PANEL_GAP;
  }
  const height = top + 4;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif">
<style>
.title { font-size: 15px; font-weight: 600; fill: #111827; }
.hint { font-size: 12px; fill: #6b7280; }
.label { font-size: 12.5px; fill: #1f2937; }
.value { font-size: 12px; fill: #111827; font-variant-numeric: tabular-nums; }
.tick { font-size: 11px; fill: #6b7280; }
.grid { stroke: #eef0f3; stroke-width: 1; }
.whisker { stroke: #374151; stroke-width: 1.2; }
</style>
<rect width="100%" height="100%" fill="#f9fafb"/>
<text x="14" y="26" style="font-size:18px;font-weight:700;fill:#111827">libforks benchmarks</text>
<text x="14" y="46" class="hint">${escapeXml(subtitle)}</text>
<rect x="${WIDTH - 250}" y="16" width="12" height="12" fill="${COLORS.libforks}"/><text x="${WIDTH - 232}" y="26" class="hint">libforks</text>
<rect x="${WIDTH - 160}" y="16" width="12" height="12" fill="${COLORS.baseline}"/><text x="${WIDTH - 142}" y="26" class="hint">baseline</text>
${panels.join("\n")}
</svg>
`;
}
