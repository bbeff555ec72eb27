// Stats shared by stat_prefix: the envoy_http_* and envoy_tcp_* families are labelled by it alone.
/**
 * One stats object per stat_prefix, shared by every listener that names it, for as long as the
 * listener manager lives (as Envoy's stats store): a listener removed by a reload leaves the counts
 * it added, so a counter never goes back.
 */
export class StatsByPrefix<T> {
  private readonly byPrefix = new Map<string, T>();
  private readonly create: (prefix: string) => T;

  constructor(create: (prefix: string) => T) {
    this.create = create;
  }

  get(prefix: string): T {
    let stats = this.byPrefix.get(prefix);
    if (stats === undefined) {
      stats = this.create(prefix);
      this.byPrefix.set(prefix, stats);
    }
    return stats;
  }
}
