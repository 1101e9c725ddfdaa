/**
 * Logging: pino JSON to stdout, a child logger per component. Secrets are redacted by key
 * wherever they appear; request bodies and query strings are never logged.
 */
import pino, { type Logger } from 'pino';

/** Keys whose values never reach a log. */
export const REDACT_PATHS = [
  'password',
  'secupass',
  'token',
  'privateKey',
  'authorization',
  '*.password',
  '*.secupass',
  '*.currentSecupass',
  '*.newSecupass',
  '*.token',
  '*.privateKey',
  '*.authorization',
  '*.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
];

/** Creates the root logger (`LOG_LEVEL` in the environment wins over the configured level). */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const effective = process.env.LOG_LEVEL ?? level;
  return pino(
    {
      level: effective,
      base: { service: 'sealdrop' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
