// How a browser upload is named in import reports and new datasets: after the dropped files, never the upload's
// batch id (the staging folder's name).
/** What a browser upload was, in words: "icons" (a folder), "data.json", or "a.json, b.png and 3 more files". */
export function uploadLabel(relativePaths: readonly string[]): { text: string; name: string } {
  const tops = [...new Set(relativePaths.map((p) => p.replace(/^\/+/, '').split('/')[0]).filter(Boolean))];
  if (tops.length <= 1) return { text: tops[0] ?? 'upload', name: (tops[0] ?? 'upload').replace(/\.[^.]+$/, '') };
  const shown = tops.slice(0, 2).join(', ');
  const text =
    tops.length > 2
      ? `${shown} and ${tops.length - 2} more file${tops.length - 2 === 1 ? '' : 's'}`
      : tops.join(' and ');
  const name = tops[0].replace(/\.[^.]+$/, '') + (tops.length > 1 ? ` (+${tops.length - 1})` : '');
  return { text, name: name.slice(0, 100) };
}
