import { smtpMetrics } from '@smtpguard/telemetry';
import type { HopReply, HopTransaction, NextHop } from './next-hop.js';

type Outcome = 'ok' | 'refused';

const outcomeOf = (r: HopReply): Outcome => (r.code < 400 ? 'ok' : 'refused');

async function time<T>(operation: string, step: () => Promise<T>, outcome: (r: T) => Outcome): Promise<T> {
  const started = performance.now();
  try {
    const r = await step();
    smtpMetrics.nextHop(operation, outcome(r), started);
    return r;
  } catch (err) {
    smtpMetrics.nextHop(operation, 'error', started);
    throw err;
  }
}

/**
 * The next hop with each step of its transaction timed (metric smtpguard.next_hop.duration, operation rcpt,
 * data or commit; outcome ok, refused by the next hop, or error: unreachable, lost, timed out).
 */
export function measuredNextHop(hop: NextHop): NextHop {
  return {
    describe: () => hop.describe(),
    get maxRecipients() {
      return hop.maxRecipients;
    },
    close: () => hop.close(),
    begin(envelope): HopTransaction {
      const tx = hop.begin(envelope);
      return {
        rcpt: (address) => time('rcpt', () => tx.rcpt(address), outcomeOf),
        data: () =>
          time(
            'data',
            () => tx.data(),
            (r) => ('refused' in r ? 'refused' : 'ok'),
          ),
        commit: () => time('commit', () => tx.commit(), outcomeOf),
        abort: () => tx.abort(),
      };
    },
  };
}
