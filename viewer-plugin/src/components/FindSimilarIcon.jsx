import SvgIcon from '@mui/material/SvgIcon';

/** A framed picture under a magnifier (inline, so the plugin needs no icon package). */
export function FindSimilarIcon(props) {
  return (
    <SvgIcon {...props}>
      <path d="M3 4h11v2H5v9h4v2H3z M6 13l2.5-3 1.8 2.2L11 11h-1z" />
      <path d="M15.5 9a4.5 4.5 0 0 1 3.7 7.07l2.8 2.8-1.42 1.42-2.8-2.8A4.5 4.5 0 1 1 15.5 9zm0 2a2.5 2.5 0 1 0 0 5 2.5 2.5 0 0 0 0-5z" />
    </SvgIcon>
  );
}
