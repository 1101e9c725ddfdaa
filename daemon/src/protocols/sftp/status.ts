/** Maps core errors to SFTP status codes with a readable message. */
import ssh2 from 'ssh2';
import { isSealdropError } from '../../core/errors.ts';

const { STATUS_CODE } = ssh2.utils.sftp;

/** SFTP status code and message for any thrown value. */
export function sftpStatus(err: unknown): { code: number; message: string } {
  if (!isSealdropError(err)) return { code: STATUS_CODE.FAILURE, message: 'SEALDROP_E_INTERNAL: internal error; see the daemon log' };
  const message = `${err.code}: ${err.message}`;
  switch (err.code) {
    case 'SEALDROP_E_NOT_FOUND':
      return { code: STATUS_CODE.NO_SUCH_FILE, message };
    case 'SEALDROP_E_FORBIDDEN':
    case 'SEALDROP_E_SCOPE':
    case 'SEALDROP_E_UNAUTHENTICATED':
    case 'SEALDROP_E_ACCOUNT_DISABLED':
      return { code: STATUS_CODE.PERMISSION_DENIED, message };
    default:
      return { code: STATUS_CODE.FAILURE, message };
  }
}
